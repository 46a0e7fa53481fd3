"""How the student's training speeds up with TensorFlow threads: windows per second of the
default student (``distill.*``) at each thread count, one fresh process per run (TensorFlow
fixes its thread pools at start-up), the counts interleaved so a drift in the machine's speed
falls on all of them. The inputs are random arrays of the real shapes (312 x 128 float16 Mel
windows, BirdNET's 1,024-d embedding, 206 species), so the arithmetic per window is the
training's own; the weights it learns mean nothing.

    PYTHONPATH=src .venv/bin/python notebooks/research/student_threads.py --threads 1,2 --repeat 2 \\
        --save artifacts/metrics/student_threads.json

Each run trains ``--epochs`` epochs over ``--windows`` windows and reports the later epochs only
(the first traces the graph). The result is a ratio on this machine; more cores than it has
cannot be measured here.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path


def one_run(threads: int, windows: int, epochs: int) -> dict:
    """Train in this process with ``threads`` intra-op threads (set before any TensorFlow op)."""
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    from dataclasses import replace

    from vocalprint.config import Config
    from vocalprint.student.train import train_student

    rng = np.random.default_rng(0)
    n, species = windows, 206
    mels = rng.normal(0, 1, (n, 312, 128)).astype(np.float16)
    emb = rng.normal(0, 1, (n, 1024)).astype(np.float32)
    logits = rng.normal(-4, 2, (n, species)).astype(np.float32)
    labels = np.where(rng.random((n, species)) < 0.01, 1.0, 0.0).astype(np.float32)
    labels[n // 3:] = np.nan  # unlabelled soundscape windows: teacher targets only
    cfg = replace(Config().distill, epochs=epochs, window_budget=0)
    _, hist = train_student(mels, teacher_emb=emb, teacher_logits=logits, labels=labels, meta=None,
                            cfg=cfg, progress=False)
    later = hist["epoch_seconds"][1:] or hist["epoch_seconds"]
    per_epoch = (n // min(cfg.batch, n)) * min(cfg.batch, n)
    return {"threads": threads, "windows": n, "epoch_seconds": hist["epoch_seconds"],
            "windows_per_s": per_epoch * len(later) / sum(later)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    ap.add_argument("--repeat", type=int, default=2, help="rounds over the thread counts (interleaved)")
    ap.add_argument("--windows", type=int, default=2048)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--save", type=Path)
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)  # the child process: one run
    a = ap.parse_args()
    if a.one is not None:
        print("RESULT " + json.dumps(one_run(a.one, a.windows, a.epochs)))
        return
    counts = [int(t) for t in a.threads.split(",")]
    rows = []
    for r in range(a.repeat):
        for t in counts:
            env = dict(os.environ, OMP_NUM_THREADS=str(t), TF_CPP_MIN_LOG_LEVEL="2")
            out = subprocess.run([sys.executable, __file__, "--one", str(t), "--windows", str(a.windows),
                                  "--epochs", str(a.epochs)], env=env, capture_output=True, text=True, check=True)
            row = json.loads(next(line for line in out.stdout.splitlines() if line.startswith("RESULT "))[7:])
            rows.append(dict(row, round=r))
            print(f"round {r}: {t} thread(s): {row['windows_per_s']:.1f} windows/s", flush=True)
    best = {t: max(x["windows_per_s"] for x in rows if x["threads"] == t) for t in counts}
    for t in counts:
        print(f"{t} thread(s): best {best[t]:.1f} windows/s, {best[t] / best[counts[0]]:.2f}x of {counts[0]}")
    if a.save:
        a.save.parent.mkdir(parents=True, exist_ok=True)
        a.save.write_text(json.dumps({"runs": rows, "best_windows_per_s": best, "cpu": os.cpu_count()}, indent=1))


if __name__ == "__main__":
    main()
