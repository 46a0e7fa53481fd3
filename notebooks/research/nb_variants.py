"""Two ideas tried on top of ``tokens-nb`` (2 views) that did not help (docs/results.md, "Making the tokens good"):
tables smoothed over nearest tokens (in Word2Vec space, and in centroid space as a control), and
a head stacked on the per-species window scores, trained on fresh synthetic mixes.

    PYTHONPATH=src .venv/bin/python notebooks/research/nb_variants.py --data ../shared/data/dev --artifacts artifacts
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd


def main() -> None:
    from gensim.models import Word2Vec
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from vocalprint import config as C
    from vocalprint.audio import mix
    from vocalprint.tokens.nb import table as nb_table, views as nb_views
    from vocalprint import models
    from vocalprint.audio.decode import frame_windows, load_audio
    from vocalprint.data.dataset import load
    from vocalprint.core.metrics import macro_auc_arrays

    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--artifacts", default="artifacts")
    ap.add_argument("--nn", type=int, default=5)
    a = ap.parse_args()
    cfg = C.load(None, ["nb.views=logmel,pcen"])
    ds = load(a.data)
    pred = models.predictor(cfg, ds, Path(a.artifacts), "tokens-nb")
    S = len(ds.species)

    def tokens(x):
        fe = nb_views.front_ends(x, sr=32000, cfg=cfg.mel, which=("logmel", "pcen"))
        toks = nb_views.view_tokens(fe, pred.views, cfg.nb, pred.nearest())
        return {v.name: t.astype(np.int64) for v, t in zip(pred.views, toks)}, fe

    clips = [load_audio(p, max_s=30) for p in ds.train["path"]]
    bgs = []
    for p in ds.train_soundscapes:
        bgs += mix.quiet_segments(load_audio(p), 32000, seg_s=5, hop_s=2.5, keep=0.5)
    sol = pd.read_csv(ds.solution_path).set_index("row_id")
    test = [(f.stem, *tokens(load_audio(f))) for f in ds.test_soundscapes]
    rows = [f"{s}_{5 * (i + 1)}" for s, _, _ in test for i in range(12)]
    Y = sol.loc[rows][list(ds.species)].to_numpy()

    def frame_scores(tk, tables):
        return sum(v.weight * tables[v.name][tk[v.name]] for v in pred.views)

    def auc(tables):
        s = [nb_table.window_scores(frame_scores(tk, tables), frame_windows(len(tk["logmel"]), n=12))
             for _, tk, _ in test]
        return macro_auc_arrays(Y, np.concatenate(s))

    print("tokens-nb (2 views)", round(auc(pred.tables), 4), flush=True)
    # 1. smoothing each token's table row with its nearest tokens
    seqs = {v.name: [] for v in pred.views}
    audio, _ = mix.mix_windows(clips, ds.label_matrix(), bgs, n=500, sr=32000, seed=4242)
    for x in list(clips) + [load_audio(p) for p in ds.train_soundscapes] + list(audio):
        for k, t in tokens(x)[0].items():
            seqs[k].append([str(i) for i in t])

    def smoothed(neighbours):
        return {v.name: (pred.tables[v.name] + pred.tables[v.name][neighbours[v.name]].mean(1)) / 2 for v in pred.views}

    w2v_nn, cen_nn = {}, {}
    for v in pred.views:
        m = Word2Vec(seqs[v.name], vector_size=64, window=1, sg=1, min_count=1, workers=1, epochs=5, seed=0)
        E = np.stack([m.wv[str(i)] if str(i) in m.wv else np.zeros(64, np.float32) for i in range(v.k)])
        E /= np.maximum(np.linalg.norm(E, axis=1, keepdims=True), 1e-9)
        sim = E @ E.T
        np.fill_diagonal(sim, -2)
        w2v_nn[v.name] = np.argpartition(-sim, a.nn, axis=1)[:, :a.nn]
        c = pred.centroids[v.name]
        d = ((c[:, None, :] - c[None]) ** 2).sum(-1)
        np.fill_diagonal(d, np.inf)
        cen_nn[v.name] = np.argpartition(d, a.nn, axis=1)[:, :a.nn]
    print(f"smoothed over {a.nn} Word2Vec neighbours", round(auc(smoothed(w2v_nn)), 4), flush=True)
    print(f"smoothed over {a.nn} centroid neighbours (control)", round(auc(smoothed(cen_nn)), 4), flush=True)

    # 2. a head stacked on window features of the frame scores, trained on 1,500 fresh mixes
    def feats(tk, fe, bounds):
        sm = nb_table.smooth(frame_scores(tk, pred.tables), 9)
        out = []
        for lo, hi in bounds:
            w = sm[lo:hi]
            k = min(8, len(w))
            top = np.partition(w, len(w) - k, axis=0)[-k:].mean(0)
            lm, pc = fe["logmel"][lo:hi], fe["pcen"][lo:hi]
            out.append(np.concatenate([top, w.max(0), w.mean(0), w.std(0), [lm.mean(), lm.std(), pc.mean(), pc.std()]]))
        return np.array(out, np.float32)

    Xtr, Ytr = [], []
    for s in range(0, 1500, 250):
        audio, y = mix.mix_windows(clips, ds.label_matrix(), bgs, n=250, sr=32000, seed=777_000 + s)
        for x in audio:
            tk, fe = tokens(x)
            Xtr.append(feats(tk, fe, np.array([[0, len(tk["logmel"])]]))[0])
        Ytr.append(y)
    Xtr, Ytr = np.array(Xtr), np.concatenate(Ytr) > 0.5
    Xte = np.concatenate([feats(tk, fe, frame_windows(len(tk["logmel"]), n=12)) for _, tk, fe in test])
    sc = StandardScaler().fit(Xtr)
    P = np.zeros(Y.shape)
    for j in range(S):
        if Ytr[:, j].any():
            P[:, j] = LogisticRegression(C=0.01, max_iter=2000).fit(sc.transform(Xtr), Ytr[:, j]).decision_function(sc.transform(Xte))
    print("stacked logistic head (C=0.01)", round(macro_auc_arrays(Y, P), 4), flush=True)
    import lightgbm as lgb

    for j in range(S):
        m = lgb.LGBMClassifier(n_estimators=200, learning_rate=0.05, num_leaves=15, min_child_samples=10, subsample=0.8,
                               subsample_freq=1, colsample_bytree=0.5, max_delta_step=1, verbose=-1, n_jobs=1)
        P[:, j] = m.fit(Xtr, Ytr[:, j].astype(int)).predict_proba(Xte)[:, 1]
    print("stacked LightGBM head", round(macro_auc_arrays(Y, P), 4), flush=True)


if __name__ == "__main__":
    main()
