"""How fast are ``tokens-nb``'s PCEN and tokens on one core, and how close to the former computation?

For each ``--audio`` file (decoded at 32 kHz) this times, best of ``--repeat``, interleaved:

- PCEN of the Mel power: ``librosa.pcen`` (the former computation) against
  ``vocalprint.audio.pcen.pcen``, with the largest relative difference over all values;
- the tokens of every view of a trained ``tokens-nb`` stage (``--nb``): the former path (each view
  on its own: float16 rounding, band medians, standardised features, a Faiss flat-index search)
  against ``vocalprint.tokens.nb.views.view_tokens`` (shared rounding, medians and features, the
  matrix-product search of ``vocalprint.tokens.codebook.Nearest``), with the tokens that differ
  per view, and each part of the new path alone: the float16 rounding, the band medians and the
  standardised features of ``vocalprint.tokens.halfframes`` against the NumPy computations they
  replace, and each search.

Every number is one core (OMP/OPENBLAS/MKL/NUMBA threads set to 1 before numpy is imported).

    PYTHONPATH=src .venv/bin/python notebooks/research/nb_front.py --nb artifacts/nb/<key> \\
        --repeat 5 --audio ../shared/data/dev/test_soundscapes/*.ogg
"""
from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_v] = "1"  # one core, before numpy (and its BLAS) is imported

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402


def best(fn, repeat: int) -> float:
    fn()
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return min(ts)


def main() -> None:
    import faiss
    import librosa

    from vocalprint.audio.decode import load_audio
    from vocalprint.audio.mel import mel_basis
    from vocalprint.audio.pcen import pcen
    from vocalprint.audio.stft import mel_power
    from vocalprint.config.load import load
    from vocalprint.config import TokensConfig
    from vocalprint.tokens.codebook import band_medians, normalise_frames
    from vocalprint.tokens.halfframes import half_band_medians, round_half, standardised
    from vocalprint.tokens.nb.predictor import load_predictor
    from vocalprint.tokens.nb.views import features, tokens_cfg, view_tokens

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nb", required=True, help="a finished tokens-nb stage folder (artifacts/nb/<key>)")
    ap.add_argument("--audio", nargs="+", required=True)
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    faiss.omp_set_num_threads(1)
    cfg = load(None)
    m = json.loads((Path(a.nb) / "manifest.json").read_text())
    pred = load_predictor(Path(a.nb), cfg, m["species"])
    near = pred.nearest()
    flat = {}
    for v in pred.views:
        ix = faiss.IndexFlatL2(pred.centroids[v.name].shape[1])
        ix.add(np.ascontiguousarray(pred.centroids[v.name], np.float32))
        flat[v.name] = ix

    def former_tokens(fe):
        out = []
        for v in pred.views:
            f = features(fe[v.frontend].astype(np.float16), v, tokens_cfg(v, cfg.nb))
            out.append(flat[v.name].search(f, 1)[1][:, 0].astype(np.uint16))
        return out

    sr, mc = cfg.audio.sr, cfg.mel
    t: dict[str, list] = {}
    flips = {v.name: 0 for v in pred.views}
    n_frames, rel = 0, 0.0
    for path in a.audio:
        x = load_audio(path, sr=sr)
        s = mel_power(x, sr=sr, basis=mel_basis(sr, mc), n_fft=mc.n_fft, hop=mc.hop)
        ref = np.ascontiguousarray(librosa.pcen(s.T * (2**31), sr=sr, hop_length=mc.hop).T, dtype=np.float32)
        new = pcen(s, sr=sr, hop=mc.hop)
        rel = max(rel, float((np.abs(new - ref) / np.maximum(np.abs(ref), 1e-30)).max()))
        fe = {"logmel": np.ascontiguousarray(10.0 * np.log10(np.maximum(s, 1e-10)), dtype=np.float32), "pcen": new}
        old_tok, new_tok = former_tokens({**fe, "pcen": ref}), view_tokens(fe, pred.views, cfg.nb, near)
        for v, o, n in zip(pred.views, old_tok, new_tok):
            flips[v.name] += int((o != n).sum())
        n_frames += len(s)
        lm16 = fe["logmel"].astype(np.float16).astype(np.float32)
        lm16h = fe["logmel"].astype(np.float16)
        med = half_band_medians(lm16h)
        std = TokensConfig(frame_norm="standardize")
        feats = {(v.frontend, v.lo, v.hi): features(fe[v.frontend].astype(np.float16), v, tokens_cfg(v, cfg.nb))
                 for v in pred.views}
        parts = {
            "PCEN, librosa (former)": lambda: librosa.pcen(s.T * (2**31), sr=sr, hop_length=mc.hop),
            "PCEN, vocalprint": lambda: pcen(s, sr=sr, hop=mc.hop),
            "tokens, former path (Faiss, each view alone)": lambda: former_tokens(fe),
            "tokens, view_tokens (adopted)": lambda: view_tokens(fe, pred.views, cfg.nb, near),
            "  of which: float16 rounding (log-Mel), round_half (adopted)": lambda: round_half(fe["logmel"]),
            "  float16 rounding (log-Mel), astype to float16 and back (former)": lambda: fe["logmel"].astype(np.float16).astype(np.float32),
            "  of which: band medians (log-Mel), counting (adopted)": lambda: half_band_medians(lm16h),
            "  band medians (log-Mel), np.median (former)": lambda: band_medians(lm16),
            "  of which: features, all 128 bands (log-Mel), standardised (adopted)":
                lambda: standardised(lm16h, med, 0, lm16h.shape[1]),
            "  features, all 128 bands (log-Mel), NumPy (former)": lambda: normalise_frames(lm16 - med, cfg=std),
            "  of which: features, a quarter band group (log-Mel), standardised (adopted)":
                lambda: standardised(lm16h, med, 0, lm16h.shape[1] // 4),
            "  features, a quarter band group (log-Mel), NumPy (former)":
                lambda: normalise_frames(np.ascontiguousarray((lm16 - med)[:, :lm16.shape[1] // 4]), cfg=std),
        }
        for v in pred.views:
            f = feats[(v.frontend, v.lo, v.hi)]
            parts[f"  of which: search {v.name} (K={v.k} x {v.hi - v.lo})"] = lambda f=f, v=v: near[v.name](f)
            parts[f"  Faiss search {v.name}"] = lambda f=f, v=v: flat[v.name].search(f, 1)
        for k, fn in parts.items():
            t.setdefault(k, []).append(best(fn, a.repeat))
    minutes = n_frames * mc.hop / sr / 60
    print(f"{len(a.audio)} files, {minutes:.1f} audio minutes, best of {a.repeat}, one core")
    print("| computation | ms per audio minute |\n|---|---:|")
    for k, v in t.items():
        print(f"| {k} | {1000 * sum(v) / minutes:.1f} |")
    print(f"\nPCEN: largest relative difference from librosa {rel:.2e}")
    print(f"tokens differing from the former path, of {n_frames} frames per view: {flips}")


if __name__ == "__main__":
    main()
