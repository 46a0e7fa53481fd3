"""Stage 1: audio -> log-Mel frames, cached per file as float16 ``[t, n_mels]``."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from vocalprint.core import artifacts as A
from vocalprint.audio.decode import AudioError, load_audio
from vocalprint.config import Config, MelConfig, fingerprint
from vocalprint.data.dataset import Dataset, DatasetError
from vocalprint.core.parallel import map_files

log = logging.getLogger(__name__)


def mel_basis(sr: int, cfg: MelConfig) -> np.ndarray:
    """The Mel filterbank [n_mels, 1 + n_fft // 2] of ``cfg`` at ``sr``, cached (shared: do not
    modify it)."""
    key = (sr, cfg)
    if key not in _BASIS:
        import librosa

        _BASIS[key] = librosa.filters.mel(sr=sr, n_fft=cfg.n_fft, n_mels=cfg.n_mels, fmin=cfg.fmin, fmax=cfg.fmax)
    return _BASIS[key]


_BASIS: dict = {}


def logmel(x: np.ndarray, *, sr: int, cfg: MelConfig) -> np.ndarray:
    """Log-Mel frames of mono audio ``x`` [shape=(n,)] -> [shape=(t, n_mels)] float32.

    ``t = 1 + n // hop`` (centred frames). ``frontend="logmel"`` gives dB (power, ref 1.0, floored
    at -100 dB, so absolute level is kept); ``"pcen"`` gives per-channel energy normalisation
    (:func:`vocalprint.audio.pcen.pcen`, within 2.5e-6 of librosa's, relative). The power comes
    from :func:`vocalprint.audio.stft.mel_power` (float32, blockwise), within 0.02 dB of
    :func:`logmel_reference` (librosa's STFT in float64).
    """
    from vocalprint.audio.stft import mel_power

    if cfg.frontend not in ("logmel", "pcen"):
        raise ValueError(f"mel.frontend must be 'logmel' or 'pcen', got {cfg.frontend!r}")
    x = np.asarray(x, dtype=np.float32)
    if x.size < cfg.n_fft // 2 + 1:
        x = np.pad(x, (0, cfg.n_fft // 2 + 1 - x.size))
    s = mel_power(x, sr=sr, basis=mel_basis(sr, cfg), n_fft=cfg.n_fft, hop=cfg.hop)
    if cfg.frontend == "pcen":
        from vocalprint.audio.pcen import pcen

        return pcen(s, sr=sr, hop=cfg.hop)
    np.maximum(s, 1e-10, out=s)
    np.log10(s, out=s)
    s *= 10.0
    return s


def logmel_reference(x: np.ndarray, *, sr: int, cfg: MelConfig) -> np.ndarray:
    """:func:`logmel` as librosa computes it (its STFT, float64 FFT, one dense filterbank product):
    the reference the fast front end is tested against, 2.7x slower on one core."""
    import librosa

    if x.size < cfg.n_fft // 2 + 1:
        x = np.pad(x, (0, cfg.n_fft // 2 + 1 - x.size))
    spec = np.abs(librosa.stft(x, n_fft=cfg.n_fft, hop_length=cfg.hop, center=True)) ** 2
    s = mel_basis(sr, cfg) @ spec
    if cfg.frontend == "pcen":
        out = librosa.pcen(s * (2**31), sr=sr, hop_length=cfg.hop)
    elif cfg.frontend == "logmel":
        out = 10.0 * np.log10(np.maximum(s, 1e-10))
    else:
        raise ValueError(f"mel.frontend must be 'logmel' or 'pcen', got {cfg.frontend!r}")
    return np.ascontiguousarray(out.T, dtype=np.float32)


def silence(cfg: MelConfig) -> float:
    """The frame value of silence for ``cfg.frontend`` (pads windows past the audio): -100 dB for
    log-Mel (its floor), 0 for PCEN."""
    return 0.0 if cfg.frontend == "pcen" else -100.0


def file_mel(path: Path, cfg: Config) -> np.ndarray:
    """Decode and transform one file: [t, n_mels] float32, finite in float16. Raises AudioError."""
    m = logmel(load_audio(path, sr=cfg.audio.sr), sr=cfg.audio.sr, cfg=cfg.mel)
    if not np.isfinite(m.astype(np.float16)).all():  # stored as float16: must stay finite there too
        raise AudioError(f"{path}: log-Mel frames are not finite (values out of range)")
    return m


def key(cfg: Config, ds: Dataset) -> str:
    return fingerprint("mel", cfg.audio, cfg.mel, ds.fingerprint())


def _one(path: Path, out: Path, cfg: Config) -> tuple[int, str]:
    """Frames of one file -> ``out`` (atomic); (n_frames, "") or (0, why it was skipped)."""
    if out.is_file():  # finished before an interruption (written atomically, so complete)
        try:
            return int(np.load(out, mmap_mode="r").shape[0]), ""
        except (OSError, ValueError, EOFError):
            log.warning("mels: unreadable cached %s; recomputing", out)
    try:
        m = file_mel(path, cfg)
    except AudioError as e:
        return 0, str(e)
    except Exception as e:  # noqa: BLE001 - one odd file must not stop the stage; it is reported
        return 0, f"{path}: {type(e).__name__}: {e}"
    A.save_npy(out, m.astype(np.float16))
    return m.shape[0], ""


def audio_items(ds: Dataset) -> pd.DataFrame:
    """Every training-side audio file: split, relative name, path, file_id (train rows) or -1."""
    rows = [("train_audio", f"train_audio/{r.filename}", r.path, int(r.file_id)) for r in ds.train.itertuples()]
    rows += [("train_soundscapes", f"train_soundscapes/{p.name}", p, -1) for p in ds.train_soundscapes]
    return pd.DataFrame(rows, columns=["split", "name", "path", "file_id"])


def npy_name(name: str) -> str:
    return name.replace("/", "__") + ".npy"


def run(cfg: Config, ds: Dataset, root: Path) -> Path:
    """Mel frames of all training-side audio -> ``<root>/mels/<key>/`` with ``index.csv``."""
    final = A.stage_dir(root, "mels", key(cfg, ds))
    if A.is_complete(final):
        log.info("mels: cached at %s", final)
        return final
    work = A.partial_dir(final)
    items = audio_items(ds)
    timer = A.Timer("mel")
    with timer("mels"):
        res = map_files(_one, [(p, work / "frames" / npy_name(n), cfg) for p, n in zip(items["path"], items["name"])],
                        n_jobs=cfg.run.n_jobs, desc="mels", progress=cfg.run.progress)
    items["n_frames"] = [r[0] for r in res]
    items["error"] = [r[1] for r in res]
    bad = items[items["error"] != ""]
    for r in bad.itertuples():
        log.warning("mels: skipped %s: %s", r.name, r.error)
    if len(bad):
        log.warning("mels: %d of %d files skipped (listed in the manifest)", len(bad), len(items))
    train_ok = items.loc[items["split"] == "train_audio", "error"] == ""
    if not train_ok.any():
        example = bad["error"].iloc[0] if len(bad) else "none listed"
        raise DatasetError(f"{ds.root / 'train_audio'}: none of the {len(train_ok)} training files could be "
                           f"decoded (e.g. {example})")
    items["path"] = items["path"].astype(str)
    with A.atomic_path(work / "index.csv") as tmp:
        items.to_csv(tmp, index=False)
    minutes = float(items["n_frames"].sum() * cfg.mel.hop / cfg.audio.sr / 60)
    return A.finish(work, final, {"stage": "mels", "config": {"audio": cfg.audio, "mel": cfg.mel},
                                  "data": str(ds.root), "data_fingerprint": ds.fingerprint(),
                                  "files": None, "n_files": len(items), "n_skipped": len(bad),
                                  "skipped": bad[["name", "error"]].values.tolist()[:200],
                                  "n_dropped_rows": len(ds.dropped),  # train.csv rows never read
                                  "dropped_rows": [list(d) for d in ds.dropped[:200]],
                                  "audio_minutes": minutes, "seconds": timer.seconds})


def load_index(mel_dir: Path) -> pd.DataFrame:
    A.manifest(mel_dir)
    idx = pd.read_csv(mel_dir / "index.csv", keep_default_na=False)
    return idx[idx["error"] == ""].reset_index(drop=True)


def load_frames(mel_dir: Path, name: str) -> np.ndarray:
    """Memory-mapped float16 [t, n_mels] frames of one file."""
    return np.load(mel_dir / "frames" / npy_name(name), mmap_mode="r")


def mel_frames(x: np.ndarray, cfg: "Config", shared: dict | None) -> np.ndarray:
    """Log-Mel frames of ``x``, computed once per file when ensemble members share ``shared``."""
    key = ("mel", cfg.audio.sr, cfg.mel)
    if shared is not None and key in shared:
        return shared[key]
    frames = logmel(x, sr=cfg.audio.sr, cfg=cfg.mel)
    if shared is not None:
        shared[key] = frames
    return frames
