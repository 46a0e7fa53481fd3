"""CPU-seconds per audio minute of inference for tokens-nb variants and BirdNET zero-shot, in one
process and one run (the cost column of docs/results.md's token table).

    PYTHONPATH=src .venv/bin/python notebooks/research/token_costs.py --data ../shared/data/dev \
        --artifacts artifacts --variant 2-view=nb.views=logmel,pcen --variant 4-view=

Each variant is trained first if its artifacts are missing (as ``make submit`` would). Decoding
is excluded; one warm-up file per model; the best of two passes is reported.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")


def main() -> None:
    from vocalprint import config as C
    from vocalprint import models
    from vocalprint.audio.decode import load_audio
    from vocalprint.data.dataset import load

    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--artifacts", default="artifacts")
    ap.add_argument("--variant", action="append", default=[], help="NAME=key=value,... (tokens-nb overrides)")
    ap.add_argument("--teacher", default="birdnet-zeroshot", help="reference model ('' to skip)")
    a = ap.parse_args()
    ds = load(a.data)
    audio = [load_audio(f) for f in ds.test_soundscapes]
    minutes = sum(len(x) for x in audio) / 32000 / 60
    runs = []
    for v in a.variant or ["default="]:
        name, _, sets = v.partition("=")
        runs.append((name, "tokens-nb", [s for s in sets.split(";") if s]))
    if a.teacher:
        runs.append((a.teacher, a.teacher, []))
    out = {}
    for name, model, sets in runs:
        pred = models.predictor(C.load(None, sets), ds, Path(a.artifacts), model)
        pred.predict(audio[0], 12, {})
        best = float("inf")
        for _ in range(2):
            t0 = time.process_time()
            for x in audio:
                pred.predict(x, 12, {})
            best = min(best, (time.process_time() - t0) / minutes)
        out[name] = round(best, 4)
        print(name, out[name], flush=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
