"""Per-file stages hold one file at a time: their peak memory does not grow with the number of files.

The same clips copied four times must not raise a stage's peak traced allocation (numpy arrays
included) by more than a small margin. Measured: mels 6.15 -> 6.20 MB, windows 3.90 -> 3.91,
teacher cache 10.19 -> 10.23; a Mel stage that kept every file's frames went 9.6 -> 22.4 MB.
"""
from __future__ import annotations

import tracemalloc
from pathlib import Path

import pandas as pd
import pytest

from vocalprint import config as C
from vocalprint.audio import clips, mel
from vocalprint.data import dataset
from vocalprint.teacher import stage as teach


def _copies(demo: Path, out: Path, k: int, n: int = 16) -> Path:
    """The demo competition's first ``n`` training clips, each present ``k`` times (symlinks)."""
    out.mkdir(parents=True)
    for f in ("taxonomy.csv", "sample_submission.csv"):
        (out / f).write_bytes((demo / f).read_bytes())
    train = pd.read_csv(demo / "train.csv").head(n)
    rows = []
    for i in range(k):
        for r in train.to_dict("records"):
            src = demo / "train_audio" / r["filename"]
            name = f"{Path(r['filename']).stem}_c{i}{src.suffix}"
            dst = out / "train_audio" / Path(r["filename"]).parent / name
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.symlink_to(src)
            rows.append({**r, "filename": str(Path(r["filename"]).parent / name)})
    pd.DataFrame(rows).to_csv(out / "train.csv", index=False)
    return out


def _peak(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.slow
def test_per_file_stages_do_not_grow_with_files(demo_dir, small_cfg, standin_teacher, tmp_path):
    model, labels = standin_teacher
    cfg = C.override(small_cfg, "run", {"n_jobs": 1, "progress": False})
    cfg = C.override(cfg, "teacher", {"stride_s": 3.0, "model_path": model, "labels_path": labels})
    stages = {"mels": mel.run, "windows": clips.run, "teacher": teach.run}
    peaks: dict[str, list[int]] = {s: [] for s in stages}
    sets = {k: dataset.load(_copies(demo_dir, tmp_path / f"x{k}", k)) for k in (1, 4)}
    assert len(sets[4].train) == 4 * len(sets[1].train) == 64
    for s, run in stages.items():  # once untraced first: imports and one-off caches are not per file
        run(cfg, sets[1], tmp_path / "warm")
    for k, ds in sets.items():
        teach.prepare(cfg, tmp_path / f"art{k}")  # the model surgery is not a per-file cost
        for s, run in stages.items():
            peaks[s].append(_peak(lambda: run(cfg, ds, tmp_path / f"art{k}")))
    for s, (one, four) in peaks.items():
        assert one > 0 and four < 1.25 * one + 1e6, f"{s}: peak {one / 1e6:.1f} MB with the clips once, {four / 1e6:.1f} MB with four copies"
