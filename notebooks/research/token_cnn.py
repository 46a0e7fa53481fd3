"""Could a CNN over token vectors replace the Mel CNN? The student network
(``distill``, default here width 32) trained on the teacher-labelled mixes only (the ``tmixes``
stage, built first when missing), its input either the log-Mel frames (control) or each frame
replaced by its nearest of ``--k`` K-means centroids of raw log-Mel frames (whole-frame tokens
looked up as their centroid vectors). Rows are scored as ``MODEL=student`` does (max over windows
shifted ± ``submit.student_shift_s``), on the labelled test soundscapes of a dev-style folder.

    PYTHONPATH=src .venv/bin/python notebooks/research/token_cnn.py --data ../shared/data/dev \\
        --artifacts artifacts --set distill.n_mixes=6000
"""
from __future__ import annotations

import argparse

import numpy as np
import pandas as pd


def main() -> None:
    import faiss

    from _student import dev_setup

    from vocalprint.core import artifacts as A
    from vocalprint.student.train import predict_keras, train_student
    from vocalprint import pipeline
    from vocalprint.student import stage as student
    from vocalprint.audio.decode import load_audio, n_windows, row_ids
    from vocalprint.config import frames_per_window
    from vocalprint.audio.mel import logmel
    from vocalprint.core.metrics import macro_auc
    from vocalprint.student.predictor import shifted_windows

    ap = argparse.ArgumentParser()
    ap.add_argument("--k", type=int, default=1024, help="K-means centroids (tokens)")
    a, cfg, ds, root, solution = dev_setup(["distill.width=32", "run.progress=false"], ap)
    cache, tfeat = pipeline.teacher_features(cfg, ds, root)
    tm = student.mixes(cfg, ds, cache, root)
    species = A.manifest(tfeat)["species"]
    X = np.asarray(np.load(A.verified(tm / "mel.npy"), mmap_mode="r"), np.float32)
    E, T, Y = (np.load(A.verified(tm / f"{n}.npy")) for n in ("emb", "logits", "labels"))
    flat = X.reshape(-1, X.shape[2])
    km = faiss.Kmeans(flat.shape[1], a.k, niter=20, seed=0)
    km.train(np.ascontiguousarray(flat[np.random.default_rng(0).choice(len(flat), 200_000, replace=False)]))
    ix = faiss.IndexFlatL2(flat.shape[1])
    ix.add(km.centroids)

    def tokens(w: np.ndarray) -> np.ndarray:
        out = np.empty_like(w)
        for s in range(0, len(w), 500):
            b = w[s:s + 500]
            _, i = ix.search(np.ascontiguousarray(b.reshape(-1, b.shape[-1])), 1)
            out[s:s + 500] = km.centroids[i[:, 0]].reshape(b.shape)
        return out

    fpw, shift = frames_per_window(cfg), cfg.submit.student_shift_s
    test = []
    for p in ds.test_soundscapes:
        x = load_audio(p, sr=cfg.audio.sr)
        n = n_windows(len(x), sr=cfg.audio.sr)
        wins, idx = shifted_windows(logmel(x, sr=cfg.audio.sr, cfg=cfg.mel), n=n, fpw=fpw,
                                    offsets_s=(-shift, 0.0, shift), cfg=cfg)
        test.append((p.stem, n, wins, idx))
    print("| input | dev AUC |\n|---|---|")
    for name, f in (("log-Mel frames", lambda w: w), (f"K = {a.k} whole-frame token vectors", tokens)):
        model, _ = train_student(f(X), teacher_emb=E, teacher_logits=T, labels=Y, meta=None,
                                 cfg=cfg.distill, progress=False)
        rows = []
        for stem, n, wins, idx in test:
            lg = predict_keras(model, f(wins))["logits"][idx].max(axis=1)
            p = 1 / (1 + np.exp(-lg))
            rows += [[r, *p[i]] for i, r in enumerate(row_ids(stem, n, window_s=cfg.audio.window_s))]
        auc = macro_auc(solution, pd.DataFrame(rows, columns=["row_id", *species]))[0]
        print(f"| {name} | {auc:.3f} |", flush=True)


if __name__ == "__main__":
    main()
