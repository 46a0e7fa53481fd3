"""What the token front costs in TFLite. One untrained student per variant (weights do not
change the cost), exported as the student stage exports it (``distill.token_quant``, by default
the token front in float and the body in int8; full int8 for the Mel student; a whole-minute
token graph takes its frames centred outside it, not timed here), run with one thread on 25
windows of 312 x 128 random dB frames (about one audio minute with ± 2.5 s shifts: 2n + 1 windows
for n = 12 rows), or, for the rows marked "whole minute", the student's whole-file graph
(:mod:`vocalprint.student.fcn`) once over a minute, which reads the same windows off one pass.
Prints seconds per audio minute, the mean of five runs after one untimed run.

    PYTHONPATH=src .venv/bin/python notebooks/research/token_front_cost.py [name part]
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

OLD = {"token_groups": 16, "token_k": 256, "token_k_frame": 1024}  # the defaults until this change
VARIANTS = {
    "tokens-cnn defaults (32 level groups of 4 bands, K=16, mean centre, 2-D body)": {},
    "same, 2 residual stages": {"token_stages": 2},
    "same, plus a whole-frame codebook K=256": {"token_k_frame": 256},
    "16 groups of 8 bands, K=256, whole frame K=1024 (earlier defaults)": OLD,
    "earlier defaults, median centre": {**OLD, "token_center": "median"},
    "earlier defaults, no whole-frame codebook": {**OLD, "token_k_frame": 0},
    "Mel student (width 48, full int8)": {"front": "mel"},
    "tokens-cnn, running centre": {"token_center": "running"},
    "tokens-cnn, running centre, whole minute": {"token_center": "running", "whole": True},
    "Mel student, whole minute": {"front": "mel", "whole": True},
    "tokens-cnn defaults, whole minute": {"whole": True},
    "tokens-cnn defaults, int8 weights (token_quant=weights)": {"token_quant": "weights"},
    "tokens-cnn defaults, int8 weights, whole minute": {"token_quant": "weights", "whole": True},
}


def main(only: str = "") -> None:
    from vocalprint.config import Config
    from vocalprint.config.student import StudentConfig
    from vocalprint.student.export import export_tflite, int8_quant
    from vocalprint.student.fcn import centred_input, export_fcn
    from vocalprint.student.net import build_student
    from vocalprint.student.runtime import StudentRunner
    from vocalprint.student.token_front import fit_token_books

    x = (np.random.default_rng(0).normal(size=(64, 312, 128)) * 10 - 50).astype(np.float32)
    print("| variant | s per audio minute |\n|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, kw) in enumerate(VARIANTS.items()):
            if only not in name:
                continue
            whole = kw.get("whole", False)
            cfg = StudentConfig(**{"front": "tokens", "token_sample": 5000,
                                   **{k: v for k, v in kw.items() if k != "whole"}})
            books = fit_token_books(x, cfg) if cfg.front == "tokens" else None
            m = build_student(n_frames=312, n_mels=128, n_classes=29, teacher_emb_dim=1024, n_meta=0,
                              cfg=cfg, codebooks=books)
            path = Path(tmp) / f"v{i}.tflite"
            if whole:
                lay = export_fcn(m, path, Config(), cfg, x, silence=-100.0, rng=np.random.default_rng(0))
                r = StudentRunner(path, outputs=("logits",))
                w = centred_input(np.resize(x, (1, lay.length, 128)), lay)
            else:
                r = StudentRunner(export_tflite(m, path, quant=int8_quant(cfg), representative=x[:16]))
                w = x[:25]
            r.predict(w)
            t = time.perf_counter()
            for _ in range(5):
                r.predict(w)
            print(f"| {name} | {(time.perf_counter() - t) / 5:.4f} |", flush=True)


if __name__ == "__main__":
    import sys

    main(sys.argv[1] if len(sys.argv) > 1 else "")  # optional: only the variants whose name holds it
