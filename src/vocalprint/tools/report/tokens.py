"""Token statistics from the ``tokens``, ``w2v`` and ``features`` stages: counts and entropy per
species, lift, Word2Vec neighbours, the frames nearest each centroid, and a PCA of window
embeddings."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import pandas as pd

from vocalprint.core import artifacts as A
from vocalprint.tools.report.folders import stage_config


def token_counts(tok: np.ndarray, k: int) -> np.ndarray:
    """Frames per token id: [k] int64."""
    return np.bincount(np.asarray(tok, dtype=np.int64), minlength=k)[:k]


def entropy_bits(counts: np.ndarray) -> float:
    """Shannon entropy (bits) of the distribution given by non-negative ``counts``; 0 if empty."""
    c = np.asarray(counts, dtype=float)
    tot = c.sum()
    if tot <= 0:
        return 0.0
    p = c[c > 0] / tot
    return float(-(p * np.log2(p)).sum())


def train_labels(data_dir: str | Path) -> dict[str, str]:
    """Tokens/mels index name (``train_audio/<filename>``) -> primary label, from train.csv."""
    tr = pd.read_csv(Path(data_dir) / "train.csv", usecols=["primary_label", "filename"])
    return {f"train_audio/{f}": str(p) for f, p in zip(tr["filename"], tr["primary_label"])}


def species_token_counts(tok: np.ndarray, index: pd.DataFrame, labels: dict[str, str], *, k: int
                         ) -> tuple[list[str], np.ndarray]:
    """Token counts per species over its training files: (species, [n_species, k])."""
    by: dict[str, np.ndarray] = {}
    for r in index.itertuples():
        sp = labels.get(r.name)
        if sp is None:
            continue
        c = token_counts(tok[int(r.offset):int(r.offset) + int(r.n_frames)], k)
        by[sp] = by[sp] + c if sp in by else c
    species = sorted(by)
    return species, (np.stack([by[s] for s in species]) if species else np.zeros((0, k), np.int64))


def subsampled_entropy(counts: np.ndarray, n: int, *, draws: int = 5, seed: int = 0) -> float:
    """Mean entropy (bits) of ``n`` frames drawn without replacement from ``counts``: comparable
    across species with different amounts of audio (the plug-in entropy grows with the sample)."""
    c = np.asarray(counts, dtype=np.int64)
    if n >= c.sum():
        return entropy_bits(c)
    rng = np.random.default_rng(seed)
    return float(np.mean([entropy_bits(rng.multivariate_hypergeometric(c, n)) for _ in range(draws)]))


def token_usage(species: list[str], counts: np.ndarray) -> pd.DataFrame:
    """Per species: frames, entropy of its token distribution (bits) over all its frames and
    (``entropy_eq_bits``) over the same number of frames for every species (the smallest
    species' count), perplexity (2**H: the number of equally used tokens it amounts to), tokens
    used, and its most used token; most focused (lowest equal-size entropy) first."""
    n_eq = int(counts.sum(axis=1).min()) if len(counts) else 0
    rows = []
    for s, c in zip(species, counts):
        h = entropy_bits(c)
        rows.append({"species": s, "frames": int(c.sum()), "entropy_bits": h,
                     "entropy_eq_bits": subsampled_entropy(c, n_eq), "perplexity": 2 ** h,
                     "tokens_used": int((c > 0).sum()), "top_token": int(c.argmax()),
                     "top_share": float(c.max() / max(c.sum(), 1))})
    out = pd.DataFrame(rows)
    out.attrs["equal_frames"] = n_eq
    return out.sort_values(["entropy_eq_bits", "entropy_bits"], ignore_index=True)


def lift(counts: np.ndarray, *, alpha: float = 1.0) -> np.ndarray:
    """p(token | species) / p(token) with add-``alpha`` smoothing: [n_species, k]."""
    c = np.asarray(counts, dtype=float) + alpha
    return (c / c.sum(axis=1, keepdims=True)) / (c.sum(axis=0) / c.sum())


def typical_tokens(counts: np.ndarray, row: int, *, n: int = 3, min_count: int = 10) -> np.ndarray:
    """The ``n`` tokens most over-represented in species ``row`` (highest lift, used >= min_count times)."""
    li = lift(counts)[row]
    ok = np.flatnonzero(counts[row] >= min_count)
    if not len(ok):
        ok = np.flatnonzero(counts[row] > 0)
    return ok[np.argsort(-li[ok], kind="stable")][:n]


def cosine_neighbours(vectors: np.ndarray, token: int, *, n: int = 5) -> pd.DataFrame:
    """The ``n`` tokens whose Word2Vec vectors are closest in cosine to ``token`` (self and unseen
    all-zero vectors excluded)."""
    v = np.asarray(vectors, dtype=float)
    norm = np.linalg.norm(v, axis=1)
    cos = v @ v[token] / np.maximum(norm * norm[token], 1e-12)
    cos[token] = -np.inf
    cos[norm == 0] = -np.inf
    order = np.argsort(-cos, kind="stable")[:n]
    order = order[np.isfinite(cos[order])]
    return pd.DataFrame({"token": order, "cosine": cos[order]})


def neighbour_table(vectors: np.ndarray, species: list[str], counts: np.ndarray, pick: list[str], *,
                    n_typical: int = 2, n: int = 5) -> pd.DataFrame:
    """For each species in ``pick``: its most typical tokens, their cosine neighbours, and how
    typical each neighbour is of the same species (lift > 1 = over-represented)."""
    li = lift(counts)
    rows = []
    for s in pick:
        i = species.index(s)
        for t in typical_tokens(counts, i, n=n_typical):
            for nb in cosine_neighbours(vectors, int(t), n=n).itertuples():
                rows.append({"species": s, "token": int(t), "token_lift": li[i, t], "neighbour": int(nb.token),
                             "cosine": nb.cosine, "neighbour_lift": li[i, nb.token]})
    return pd.DataFrame(rows)


def pick_tokens(species: list[str], counts: np.ndarray, *, n_frequent: int = 2, n_species: int = 4) -> dict[int, str]:
    """A few centroids worth looking at: the most used overall, and the most typical token of the
    ``n_species`` species with the most frames. Returns {token: why}."""
    out: dict[int, str] = {}
    for t in np.argsort(-counts.sum(axis=0), kind="stable")[:n_frequent]:
        out[int(t)] = "most used"
    for i in np.argsort(-counts.sum(axis=1), kind="stable")[:n_species]:
        for t in typical_tokens(counts, int(i), n=3):
            if int(t) not in out:
                out[int(t)] = f"typical of {species[i]}"
                break
    return out


def nearest_frames(items: Iterable[tuple[str, np.ndarray, np.ndarray]], *, token: int,
                   centroid: np.ndarray, n: int = 8, per_file: int | None = None) -> pd.DataFrame:
    """Frames assigned to ``token`` nearest its centroid.

    ``items`` yields (file name, clustering features [t, d], token ids [t]); returns the ``n``
    closest frames as (name, frame, dist) sorted by Euclidean distance, at most ``per_file`` from
    one file (None: no limit).
    """
    parts = []
    for name, feats, tok in items:
        idx = np.flatnonzero(np.asarray(tok) == token)
        if len(idx):
            d = np.linalg.norm(np.asarray(feats)[idx] - centroid, axis=1)
            parts.append(pd.DataFrame({"name": name, "frame": idx, "dist": d}))
    return _nearest(parts, n=n, per_file=per_file)


def _nearest(parts: list[pd.DataFrame], *, n: int, per_file: int | None) -> pd.DataFrame:
    if not parts:
        return pd.DataFrame(columns=["name", "frame", "dist"])
    out = pd.concat(parts).sort_values("dist", kind="stable")
    if per_file is not None:
        out = out[out.groupby("name").cumcount() < per_file]
    return out.head(n).reset_index(drop=True)


def _token_items(mel_dir: Path, tok_dir: Path, tokens: list[int], *, max_files: int, seed: int = 0
                 ) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    from vocalprint.audio import mel as M
    from vocalprint.tokens import codebook as T

    cfg = stage_config(A.manifest(tok_dir), T.TokensConfig)
    book = T.Codebook.load(tok_dir, cfg)
    seq, index = T.load_sequences(tok_dir)
    has = [r for r in index.itertuples()
           if np.isin(np.asarray(seq[r.offset:r.offset + r.n_frames]), tokens).any()]
    if len(has) > max_files:
        keep = np.sort(np.random.default_rng(seed).choice(len(has), max_files, replace=False))
        has = [has[i] for i in keep]
    for r in has:
        frames = np.asarray(M.load_frames(mel_dir, r.name), dtype=np.float32)
        yield r.name, book.project(T.frame_features(frames, cfg=cfg)), np.asarray(seq[r.offset:r.offset + r.n_frames])


def token_examples(mel_dir: Path, tok_dir: Path, tokens: list[int], *, n: int = 8, per_file: int | None = 2,
                   max_files: int = 300) -> dict[int, pd.DataFrame]:
    """For each token, its ``n`` frames nearest the centroid (at most ``per_file`` per file) among
    at most ``max_files`` files that use it: {token: DataFrame(name, frame, dist)}."""
    cent = np.load(A.verified(Path(tok_dir) / "centroids.npy"))
    best: dict[int, list[pd.DataFrame]] = {t: [] for t in tokens}
    for item in _token_items(Path(mel_dir), Path(tok_dir), list(tokens), max_files=max_files):
        for t in tokens:  # keep each file's best only: memory stays small
            best[t].append(nearest_frames([item], token=t, centroid=cent[t], n=n, per_file=per_file))
    return {t: _nearest(best[t], n=n, per_file=per_file) for t in tokens}


def frame_patches(mel_dir: Path, ex: pd.DataFrame, *, context: int = 15) -> np.ndarray:
    """Log-Mel patches [n, n_mels, 2*context+1] centred on each (name, frame); edges padded with
    the file's minimum."""
    from vocalprint.audio import mel as M

    out = []
    for r in ex.itertuples():
        f = np.asarray(M.load_frames(Path(mel_dir), r.name), dtype=np.float32)
        pad = np.pad(f, ((context, context), (0, 0)), constant_values=float(f.min()))
        out.append(pad[int(r.frame):int(r.frame) + 2 * context + 1].T)
    return np.stack(out) if out else np.zeros((0, 0, 2 * context + 1), np.float32)


def pca_2d(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project rows of ``x`` [n, d] on their first two principal axes: ([n, 2], explained variance share [2])."""
    x = np.asarray(x, dtype=np.float64)
    xc = x - x.mean(axis=0)
    _, s, vt = np.linalg.svd(xc, full_matrices=False)
    var = s ** 2
    return xc @ vt[:2].T, var[:2] / max(var.sum(), 1e-12)


def window_species(windows: pd.DataFrame, data_dir: str | Path) -> np.ndarray:
    """Primary label of each training window (windows.csv ``name`` -> train.csv; else its folder)."""
    lab = train_labels(data_dir)
    return np.array([lab.get(n, Path(n).parent.name) for n in windows["name"]])
