"""Stage 3: gensim Word2Vec skip-gram embeddings of the tokens, learned without labels."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from vocalprint.core import artifacts as A
from vocalprint.tokens import codebook as T
from vocalprint.config import Config, W2VConfig, fingerprint

log = logging.getLogger(__name__)
MAX_SENTENCE = 10_000  # gensim silently truncates longer sentences


class TokenCorpus:
    """Re-iterable corpus of token sentences (lists of str) read from a memory-mapped array."""

    def __init__(self, seq: np.ndarray, offsets: np.ndarray, lengths: np.ndarray, k: int):
        self.seq, self.offsets, self.lengths = seq, offsets, lengths
        self.vocab = [str(i) for i in range(k)]

    def __iter__(self):
        words = self.vocab.__getitem__
        for off, n in zip(self.offsets, self.lengths):
            for s in range(0, int(n), MAX_SENTENCE):
                chunk = np.asarray(self.seq[off + s: off + min(n, s + MAX_SENTENCE)])
                yield list(map(words, chunk.tolist()))


def train_vectors(corpus: TokenCorpus, *, k: int, cfg: W2VConfig) -> np.ndarray:
    """Skip-gram vectors for token ids 0..k-1: [k, dim] float32 (unseen tokens get zeros)."""
    from gensim.models import Word2Vec

    model = Word2Vec(vector_size=cfg.dim, window=cfg.window, min_count=1, sg=1, negative=cfg.negative,
                     sample=cfg.sample, seed=cfg.seed, workers=max(1, cfg.workers))
    model.build_vocab(corpus)
    model.train(corpus, total_examples=model.corpus_count, epochs=cfg.epochs)
    out = np.zeros((k, cfg.dim), np.float32)
    for word, i in model.wv.key_to_index.items():
        out[int(word)] = model.wv.vectors[i]
    return out


def token_idf(seq: np.ndarray, offsets: np.ndarray, lengths: np.ndarray, *, k: int) -> np.ndarray:
    """Inverse document frequency of each token over files: [k] float32, ``log((1+N)/(1+df)) + 1``."""
    df = np.zeros(k, np.int64)
    for off, n in zip(offsets, lengths):
        df[np.unique(np.asarray(seq[off:off + n]))] += 1
    return (np.log((1 + len(offsets)) / (1 + df)) + 1).astype(np.float32)


def key(cfg: Config, tok_key: str) -> str:
    return fingerprint("w2v", cfg.w2v, tok_key)


def run(cfg: Config, tok_dir: Path, root: Path) -> Path:
    final = A.stage_dir(root, "w2v", key(cfg, tok_dir.name))
    if A.is_complete(final):
        log.info("w2v: cached at %s", final)
        return final
    work = A.partial_dir(final)
    seq, index = T.load_sequences(tok_dir)
    k = cfg.tokens.k
    timer = A.Timer("w2v")
    corpus = TokenCorpus(seq, index["offset"].to_numpy(), index["n_frames"].to_numpy(), k)
    with timer("word2vec"):
        vecs = train_vectors(corpus, k=k, cfg=cfg.w2v)
    field = index["split"] == "train_soundscapes"
    if not field.any():
        field = index["split"] == index["split"]
    with timer("idf"):
        idf = token_idf(seq, index["offset"].to_numpy()[field], index["n_frames"].to_numpy()[field], k=k)
    A.save_npy(work / "vectors.npy", vecs)
    A.save_npy(work / "idf.npy", idf)
    return A.finish(work, final, {"stage": "w2v", "config": cfg.w2v, "upstream": [tok_dir.name],
                                  "n_tokens": int(len(seq)), "seconds": timer.seconds})


def load(w2v_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    A.manifest(w2v_dir)
    return np.load(A.verified(w2v_dir / "vectors.npy")), np.load(A.verified(w2v_dir / "idf.npy"))
