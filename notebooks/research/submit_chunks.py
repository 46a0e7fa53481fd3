"""Wall time of the budgeted submit with chunks of two files per worker (``submit.chunk_s=0``)
against chunks sized to ``submit.chunk_s`` seconds, runs interleaved, each timed as ``make bench``
times a row (:func:`vocalprint.tools.bench.measure`: a fresh warmed pool, no budget).

    PYTHONPATH=src python notebooks/research/submit_chunks.py --data $DEV --artifacts artifacts \
        --models tokens-cnn,tokens-nb,student --repeat 6 --workers 2

Prints the sorted seconds per audio minute of every run and writes them as JSON (``--out``).
"""
from __future__ import annotations

import argparse
import json
import logging
import tempfile
from dataclasses import replace
from pathlib import Path

from vocalprint import models
from vocalprint.config import load
from vocalprint.data.dataset import load as load_dataset
from vocalprint.tools.bench import measure


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--artifacts", default="artifacts")
    ap.add_argument("--models", default="tokens-cnn,tokens-nb,student", help="comma-separated, variants allowed")
    ap.add_argument("--repeat", type=int, default=6)
    ap.add_argument("--workers", default="2", help="comma-separated worker counts")
    ap.add_argument("--chunk-s", default="0,2", help="comma-separated submit.chunk_s values to compare")
    ap.add_argument("--out", default=None, help="JSON of every run's seconds per audio minute")
    a = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    cfg, ds = load(), load_dataset(a.data)
    chunks = [float(c) for c in a.chunk_s.split(",")]
    res: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for item in a.models.split(","):
            name, vcfg = models.variant(cfg, item)
            pred = models.predictor(vcfg, ds, Path(a.artifacts), name)
            for n_jobs in (int(w) for w in a.workers.split(",")):
                for _ in range(a.repeat):
                    for chunk_s in chunks:
                        c = replace(vcfg, submit=replace(vcfg.submit, chunk_s=chunk_s))
                        rep = measure(c, ds, pred, Path(tmp), n_jobs=n_jobs)
                        key = f"{item}, {n_jobs} workers, chunk_s={chunk_s:g}"
                        res.setdefault(key, []).append(round(rep["elapsed_s"] / rep["audio_minutes"], 4))
                for chunk_s in chunks:
                    key = f"{item}, {n_jobs} workers, chunk_s={chunk_s:g}"
                    print(f"{key}: {sorted(res[key])}", flush=True)
    if a.out:
        Path(a.out).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
