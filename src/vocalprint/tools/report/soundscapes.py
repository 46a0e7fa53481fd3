"""One scoring window of a test soundscape: its audio file, its log-Mel frames and the events a
synthetic set placed in it."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd


def find_soundscape(data_dir: str | Path, stem: str) -> Path:
    from vocalprint.data.dataset import AUDIO_EXT

    for ext in AUDIO_EXT:
        p = Path(data_dir) / "test_soundscapes" / f"{stem}{ext}"
        if p.is_file():
            return p
    raise FileNotFoundError(f"{data_dir}/test_soundscapes/{stem}.*: no such soundscape")


def window_logmel(data_dir: str | Path, row_id: str, *, cfg=None, window_s: float = 5.0,
                  sr: int = 32000) -> np.ndarray:
    """Log-Mel frames [t, n_mels] (dB) of one scoring window of a test soundscape."""
    from vocalprint.audio.decode import load_audio
    from vocalprint.config import MelConfig
    from vocalprint.audio.mel import logmel

    stem, end = str(row_id).rsplit("_", 1)
    x = load_audio(find_soundscape(data_dir, stem), sr=sr, max_s=float(end))
    x = x[max(0, int(round((float(end) - window_s) * sr))):]
    return logmel(x, sr=sr, cfg=cfg or MelConfig())


def window_events(data_dir: str | Path, row_id: str, *, window_s: float = 5.0) -> list[dict]:
    """Events placed in this window per ``soundscape_events.csv`` (a synthetic set's extra file, if any)."""
    p = Path(data_dir) / "soundscape_events.csv"
    if not p.is_file():
        return []
    ev = pd.read_csv(p)
    stem, end = str(row_id).rsplit("_", 1)
    row = ev[ev["soundscape_id"].astype(str) == stem]
    if row.empty or "events" not in ev:
        return []
    e1, e0 = float(end), float(end) - window_s
    return [e for e in json.loads(row["events"].iloc[0])
            if e.get("start", 0) < e1 and e.get("start", 0) + e.get("dur", 0) > e0]
