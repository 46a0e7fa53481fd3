"""Ogg Vorbis through miniaudio (stb_vorbis) against libsndfile (libvorbis): the samples ``load_audio``
returns with ``decoder="auto"`` and ``decoder="soundfile"`` on every file given, and the time of each.

For every file: which decoder ``auto`` used (``miniaudio``, or ``soundfile`` where it handed the
file over), the largest absolute sample difference, and a length mismatch if any. Then the CPU
time of ``load_audio`` per audio minute with each decoder over the first ``--time`` files,
interleaved, best of ``--repeat`` (process CPU time; one thread: both decoders are single-threaded).

    PYTHONPATH=src .venv/bin/python notebooks/research/decoders.py --repeat 5 \\
        ../shared/data/dev/test_soundscapes/*.ogg ../shared/data/dev/train_audio/*/*.ogg
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from vocalprint.audio import decode


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("files", nargs="+")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--time", type=int, default=8, help="files timed (the first N given)")
    a = ap.parse_args()

    worst, used, mismatched = 0.0, {"miniaudio": 0, "soundfile": 0}, []
    for f in a.files:
        p = Path(f)
        took = "miniaudio" if decode.read_vorbis(p, None) is not None else "soundfile"
        used[took] += 1
        x, y = decode.load_audio(p), decode.load_audio(p, decoder="soundfile")
        if x.shape != y.shape:
            mismatched.append((p.name, x.shape, y.shape))
            continue
        worst = max(worst, float(np.abs(x - y).max()))
    print(f"{len(a.files)} files: miniaudio decoded {used['miniaudio']}, handed to soundfile {used['soundfile']}; "
          f"largest sample difference {worst:.2e}; length mismatches {mismatched or 'none'}")

    timed = [Path(f) for f in a.files[:a.time]]
    minutes = sum(len(decode.load_audio(p, decoder="soundfile")) for p in timed) / 32000 / 60
    best = {"soundfile": np.inf, "auto": np.inf}
    for _ in range(a.repeat):
        for d in best:
            t = time.process_time()
            for p in timed:
                decode.load_audio(p, decoder=d)
            best[d] = min(best[d], time.process_time() - t)
    ms = {d: v * 1e3 / minutes for d, v in best.items()}
    print(f"load_audio over {len(timed)} files ({minutes:.1f} audio minutes), best of {a.repeat}, CPU ms per audio "
          f"minute: soundfile {ms['soundfile']:.1f}, auto (miniaudio) {ms['auto']:.1f}, "
          f"{ms['soundfile'] / ms['auto']:.2f}x")


if __name__ == "__main__":
    main()
