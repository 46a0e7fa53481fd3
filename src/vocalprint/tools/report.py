"""Analyst reports behind the notebooks: read finished artifacts and plot them.

Nothing here runs a pipeline stage. Inputs are the metrics of ``evaluate`` (``metrics/<model>.json``
and the scored per-window ``metrics/<model>.csv``), ``bench/bench.json``, the data folder's
``solution.csv`` and test audio, and the complete stage folders ``mels``, ``tokens``, ``w2v`` and
``features``. Plot functions return a matplotlib figure (pyplot is imported inside them).
"""
from __future__ import annotations

import ast
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import pandas as pd

from vocalprint.core import artifacts as A

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[3]  # relative data paths in manifests were given from here
CHAIN = ("mels", "tokens", "w2v", "features")


# ---------------------------------------------------------------- finding artifacts


def same_folder(a: str | Path | None, b: str | Path | None) -> bool:
    """True if two folder names point at the same folder; relative ones are tried against the
    current directory and the repository (where ``make`` runs)."""
    if not a or not b:
        return False

    def cands(p):
        p = Path(p).expanduser()
        return {p.resolve()} if p.is_absolute() else {(Path.cwd() / p).resolve(), (REPO / p).resolve()}

    return bool(cands(a) & cands(b))


@dataclass(frozen=True)
class StageFolder:
    """One chosen artifact folder: where, when finished, and how many complete ones were eligible."""

    stage: str
    path: Path
    finished: str
    candidates: int
    manifest: dict

    def __str__(self) -> str:
        more = f"newest of {self.candidates} complete" if self.candidates > 1 else "the only complete one"
        return f"{self.stage}/{self.path.name} (finished {self.finished}; {more})"


def complete_folders(root: Path, stage: str) -> list[tuple[Path, dict]]:
    """Complete folders of ``stage`` under ``root`` with their manifests, newest ``finished`` first."""
    d = Path(root) / stage
    out = [(p, A.manifest(p)) for p in d.iterdir() if p.is_dir() and A.is_complete(p)] if d.is_dir() else []
    return sorted(out, key=lambda pm: (pm[1].get("finished", ""), (pm[0] / A.MANIFEST).stat().st_mtime),
                  reverse=True)


def latest_chain(root: Path, data_dir: str | Path | None = None) -> dict[str, StageFolder]:
    """The newest complete ``mels -> tokens -> w2v -> features`` chain, each built on the one before.

    ``mels`` folders made from ``data_dir`` are preferred (any mels folder if none was). Raises
    :class:`~vocalprint.core.artifacts.ArtifactError` naming the first stage that has no folder.
    """
    chain: dict[str, StageFolder] = {}
    prev = None
    for stage in CHAIN:
        cands = complete_folders(root, stage)
        if prev is None and data_dir is not None:
            mine = [c for c in cands if same_folder(c[1].get("data"), data_dir)]
            if cands and not mine:
                log.warning("no mels folder under %s was made from %s; using the newest of any data", root, data_dir)
            cands = mine or cands
        elif prev is not None:
            cands = [c for c in cands if list(c[1].get("upstream") or []) == [prev.name]]
        if not cands:
            on = f" built on {CHAIN[CHAIN.index(stage) - 1]}/{prev.name}" if prev else ""
            raise A.ArtifactError(f"{Path(root) / stage}: no complete folder{on}; run `make {stage}` first")
        path, man = cands[0]
        chain[stage] = StageFolder(stage, path, man.get("finished", "?"), len(cands), man)
        prev = path
    return chain


def stage_config(manifest: dict, cls):
    """Rebuild a stage's config dataclass from its manifest (stored as its repr); defaults if unreadable."""
    text = manifest.get("config")
    if isinstance(text, dict):
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in text.items()})
    try:
        call = ast.parse(str(text), mode="eval").body
        if not (isinstance(call, ast.Call) and getattr(call.func, "id", "") == cls.__name__):
            raise ValueError(text)
        return cls(**{kw.arg: ast.literal_eval(kw.value) for kw in call.keywords})
    except (SyntaxError, ValueError, TypeError):
        log.warning("cannot read a %s from the manifest (%r); using defaults", cls.__name__, text)
        return cls()


# ---------------------------------------------------------------- model comparison


def read_truth(data_dir: str | Path) -> pd.DataFrame:
    """``solution.csv`` of the data folder (row_id + one 0/1 column per species)."""
    p = Path(data_dir) / "solution.csv"
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no solution.csv; the notebooks need a scored data set")
    return pd.read_csv(p)


def load_metrics(artifacts: str | Path, data_dir: str | Path, *, truth: pd.DataFrame | None = None
                 ) -> tuple[list[dict], list[str]]:
    """Every ``metrics/<model>.json`` evaluated on ``data_dir`` whose scored CSV has the solution's
    rows. Returns (entries with added ``json``/``csv`` paths, notes on the files left out)."""
    truth = read_truth(data_dir) if truth is None else truth
    want = set(truth["row_id"])
    entries, notes = [], []
    for j in sorted((Path(artifacts) / "metrics").glob("*.json")):
        m = json.loads(j.read_text())
        csv = j.with_suffix(".csv")
        if not same_folder(m.get("data"), data_dir):
            notes.append(f"{j.name}: evaluated on {m.get('data')}, not {data_dir}")
        elif not csv.is_file():
            notes.append(f"{j.name}: no per-window scores {csv.name} (re-run evaluate)")
        elif set(pd.read_csv(csv, usecols=["row_id"])["row_id"]) != want:
            notes.append(f"{csv.name}: its row ids differ from {data_dir}/solution.csv (stale?)")
        else:
            entries.append(dict(m, json=j, csv=csv))
    return entries, notes


def read_scores(csv: str | Path | pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """Per-window scores (a CSV path or a frame) aligned to ``truth``: same row order and columns."""
    p = (csv if isinstance(csv, pd.DataFrame) else pd.read_csv(csv)).set_index("row_id")
    return p.loc[truth["row_id"], list(truth.columns[1:])].reset_index()


def soundscape_ids(row_ids: Iterable[str]) -> np.ndarray:
    """``<soundscape>_<end second>`` -> soundscape id per row."""
    return np.array([str(r).rsplit("_", 1)[0] for r in row_ids])


def end_seconds(row_ids: Iterable[str]) -> np.ndarray:
    return np.array([int(str(r).rsplit("_", 1)[1]) for r in row_ids])


def macro_auc_ranks(y: np.ndarray, p: np.ndarray) -> float:
    """Macro ROC-AUC of [n, s] truth (>= 0.5 positive) and scores over the columns with both
    classes, from average ranks (Mann-Whitney; equal to sklearn's, ~50x faster). NaN if none."""
    from scipy.stats import rankdata

    yb = np.asarray(y) >= 0.5
    npos = yb.sum(axis=0)
    ok = (npos > 0) & (npos < len(yb))
    if not ok.any():
        return float("nan")
    yb, npos = yb[:, ok], npos[ok]
    r = rankdata(np.asarray(p, dtype=float)[:, ok], axis=0)
    nneg = len(yb) - npos
    auc = ((r * yb).sum(axis=0) - npos * (npos + 1) / 2) / (npos * nneg)
    return float(auc.mean())


def bootstrap_ci(truth: pd.DataFrame, scores: pd.DataFrame, *, n: int = 200, seed: int = 0
                 ) -> tuple[float, float, float]:
    """(macro AUC, 2.5%, 97.5%): whole soundscape files (row_id stems) resampled with replacement,
    each resample scored over its scorable species; the same draws as
    :func:`vocalprint.core.metrics.bootstrap_auc`, computed with :func:`macro_auc_ranks`."""
    from vocalprint.core.metrics import macro_auc

    auc = macro_auc(truth, scores)[0]
    y, p = truth.iloc[:, 1:].to_numpy(), scores.iloc[:, 1:].to_numpy()
    g = soundscape_ids(truth["row_id"])
    uniq = np.unique(g)
    rows = {u: np.flatnonzero(g == u) for u in uniq}
    rng = np.random.default_rng(seed)
    vals = np.array([macro_auc_ranks(y[pick], p[pick]) for pick in
                     (np.concatenate([rows[u] for u in rng.choice(uniq, len(uniq))]) for _ in range(n))])
    vals = vals[np.isfinite(vals)]
    if not len(vals):
        return auc, float("nan"), float("nan")
    return auc, float(np.percentile(vals, 2.5)), float(np.percentile(vals, 97.5))


def read_bench(artifacts: str | Path, data_dir: str | Path) -> dict[str, dict]:
    """``bench/bench.json`` rows by model, if the bench ran on ``data_dir``."""
    p = Path(artifacts) / "bench" / "bench.json"
    if not p.is_file():
        return {}
    b = json.loads(p.read_text())
    return {r["model"]: r for r in b.get("models", [])} if same_folder(b.get("data"), data_dir) else {}


def model_table(entries: list[dict], truth: pd.DataFrame, *, n_boot: int = 200,
                bench: dict[str, dict] | None = None) -> pd.DataFrame:
    """One row per model: macro AUC with its soundscape-bootstrap 95% CI, species scored, and the
    projected minutes for 700 test minutes (the evaluated run's projection, else the bench's)."""
    rows = []
    for e in entries:
        auc, lo, hi = bootstrap_ci(truth, read_scores(e["csv"], truth), n=n_boot)
        proj = e.get("projection_700_min") or {}
        b = (bench or {}).get(e["model"], {})
        m2, m4, src = proj.get("2_cores"), proj.get("4_cores"), "evaluate"
        if m2 is None and b:
            m2, m4, src = b.get("projected_min_700_2_cores"), b.get("projected_min_700_4_cores"), "bench"
        rows.append({"model": e["model"], "macro_auc": auc, "ci_lo": lo, "ci_hi": hi,
                     "n_species": e.get("n_species_scored"), "min_700_2_cores": m2, "min_700_4_cores": m4,
                     "minutes_from": src if m2 is not None else None, "seconds": e.get("seconds"),
                     "audio_minutes": e.get("audio_minutes")})
    return pd.DataFrame(rows).sort_values("macro_auc", ascending=False, ignore_index=True)


def per_species_table(entries: list[dict], truth: pd.DataFrame) -> pd.DataFrame:
    """Species x model AUC (from the metrics JSON), plus positives in the test set; worst first."""
    df = pd.DataFrame({e["model"]: pd.Series(e["per_species"], dtype=float) for e in entries})
    models = list(df.columns)
    df["n_pos"] = (truth.set_index("row_id")[df.index] > 0).sum().astype(int)
    df["mean_auc"] = df[models].mean(axis=1)
    return df.sort_values(["mean_auc", "n_pos"]).rename_axis("species")


def pareto(points: list[tuple[float, float]]) -> list[int]:
    """Indices of (minutes, auc) points no other point beats on both; by minutes."""
    from vocalprint.tools.bench import pareto as _p

    return _p(points)


def _share(x: np.ndarray, ref: np.ndarray, *, above: bool) -> np.ndarray:
    """Share of sorted ``ref`` strictly above (or below) each ``x``; ties count half."""
    lo, hi = np.searchsorted(ref, x, "left"), np.searchsorted(ref, x, "right")
    return ((len(ref) - hi if above else lo) + 0.5 * (hi - lo)) / len(ref)


def window_errors(truth: pd.DataFrame, scores: pd.DataFrame) -> pd.DataFrame:
    """Every (window, species) of the scorable species, with its share of the AUC loss.

    ``error`` of a positive window: the share of that species' negative windows scored above it (a
    missed call); of a negative window: the share of positives scored below it (a false alarm).
    Ties count half, so a species' mean positive error is exactly ``1 - AUC``.
    """
    t = truth.set_index("row_id")
    s = scores.set_index("row_id").loc[t.index]
    parts = []
    for sp in t.columns:
        y = t[sp].to_numpy() > 0
        if not y.any() or y.all():
            continue
        v = s[sp].to_numpy(dtype=float)
        err = np.where(y, _share(v, np.sort(v[~y]), above=True), _share(v, np.sort(v[y]), above=False))
        parts.append(pd.DataFrame({"row_id": t.index, "species": sp, "label": y.astype(int), "score": v,
                                   "error": err, "kind": np.where(y, "missed", "false alarm")}))
    out = pd.concat(parts, ignore_index=True)
    out.insert(1, "soundscape", soundscape_ids(out["row_id"]))
    out.insert(2, "end_s", end_seconds(out["row_id"]))
    return out


def species_errors(errors: pd.DataFrame) -> pd.DataFrame:
    """Per species: AUC (1 - mean positive error), positives, and the worst miss / false alarm."""
    rows = []
    for sp, g in errors.groupby("species"):
        p, n = g[g["label"] == 1], g[g["label"] == 0]
        wm, wf = p.loc[p["error"].idxmax()], n.loc[n["error"].idxmax()]
        rows.append({"species": sp, "auc": 1 - p["error"].mean(), "n_pos": len(p),
                     "worst_miss": wm["row_id"] if wm["error"] > 0 else None, "miss_error": wm["error"],
                     "worst_false_alarm": wf["row_id"] if wf["error"] > 0 else None,
                     "false_alarm_error": wf["error"]})
    return pd.DataFrame(rows).sort_values(["auc", "n_pos"], ignore_index=True)


def worst_windows(errors: pd.DataFrame, *, n: int = 3) -> pd.DataFrame:
    """Up to ``n`` missed calls and ``n`` false alarms with the largest error (> 0), one per
    species first (the worst), then the next worst of any species."""
    parts = []
    for kind, asc in (("missed", True), ("false alarm", False)):
        g = errors[(errors["kind"] == kind) & (errors["error"] > 0)]
        g = g.sort_values(["error", "score"], ascending=[False, asc], kind="stable")
        first = g.drop_duplicates("species")
        parts.append(pd.concat([first, g.drop(first.index)]).head(n))
    return pd.concat(parts, ignore_index=True)


def find_soundscape(data_dir: str | Path, stem: str) -> Path:
    from vocalprint.data.dataset import AUDIO_EXT

    for ext in AUDIO_EXT:
        p = Path(data_dir) / "test_soundscapes" / f"{stem}{ext}"
        if p.is_file():
            return p
    raise FileNotFoundError(f"{data_dir}/test_soundscapes/{stem}.*: no such soundscape")


def window_logmel(data_dir: str | Path, row_id: str, *, cfg=None, window_s: float = 5.0,
                  sr: int = 32000) -> np.ndarray:
    """Log-Mel frames [t, n_mels] (dB) of one scoring window of a test soundscape."""
    from vocalprint.audio.decode import load_audio
    from vocalprint.config import MelConfig
    from vocalprint.audio.mel import logmel

    stem, end = str(row_id).rsplit("_", 1)
    x = load_audio(find_soundscape(data_dir, stem), sr=sr, max_s=float(end))
    x = x[max(0, int(round((float(end) - window_s) * sr))):]
    return logmel(x, sr=sr, cfg=cfg or MelConfig())


def window_events(data_dir: str | Path, row_id: str, *, window_s: float = 5.0) -> list[dict]:
    """Events placed in this window per ``soundscape_events.csv`` (a synthetic set's extra file, if any)."""
    p = Path(data_dir) / "soundscape_events.csv"
    if not p.is_file():
        return []
    ev = pd.read_csv(p)
    stem, end = str(row_id).rsplit("_", 1)
    row = ev[ev["soundscape_id"].astype(str) == stem]
    if row.empty or "events" not in ev:
        return []
    e1, e0 = float(end), float(end) - window_s
    return [e for e in json.loads(row["events"].iloc[0])
            if e.get("start", 0) < e1 and e.get("start", 0) + e.get("dur", 0) > e0]


def _plt():
    import matplotlib.pyplot as plt

    return plt


def _mel_yticks(ax, cfg, n_mels: int) -> None:
    import librosa

    f = librosa.mel_frequencies(n_mels=n_mels, fmin=cfg.fmin, fmax=cfg.fmax)
    marks = [k for k in (500, 1000, 2000, 4000, 8000, 16000) if f[0] <= k <= f[-1]]
    ax.set_yticks([int(np.argmin(abs(f - k))) for k in marks], [f"{k / 1000:g}" for k in marks])
    ax.set_ylabel("kHz")


def plot_model_auc(table: pd.DataFrame):
    """Macro AUC per model with its bootstrap 95% interval."""
    plt = _plt()
    t = table.iloc[::-1]
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(t) + 1.5))
    y = np.arange(len(t))
    ax.errorbar(t["macro_auc"], y, xerr=[t["macro_auc"] - t["ci_lo"], t["ci_hi"] - t["macro_auc"]],
                fmt="o", capsize=4)
    for yi, r in zip(y, t.itertuples()):
        ax.annotate(f"{r.macro_auc:.3f} [{r.ci_lo:.3f}, {r.ci_hi:.3f}]", (r.macro_auc, yi),
                    textcoords="offset points", xytext=(0, 7), ha="center", fontsize=8)
    ax.set_yticks(y, t["model"])
    ax.set_ylim(-0.6, len(t) - 0.2)
    ax.set_xlabel("macro ROC-AUC (95% CI: soundscape files resampled)")
    ax.axvline(0.5, color="grey", lw=0.8, ls=":")
    ax.set_title("Models on the test soundscapes")
    fig.tight_layout()
    return fig


def plot_per_species(per: pd.DataFrame, *, max_species: int = 60):
    """Per-species AUC of every model, species sorted by their mean AUC (worst at the top)."""
    plt = _plt()
    models = [c for c in per.columns if c not in ("n_pos", "mean_auc")]
    p = per if len(per) <= max_species else pd.concat([per.head(max_species // 2), per.tail(max_species // 2)])
    fig, ax = plt.subplots(figsize=(8, 0.28 * len(p) + 1.5))
    y = np.arange(len(p))[::-1]
    for i, m in enumerate(models):
        ax.scatter(p[m], y + (i - (len(models) - 1) / 2) * 0.18, s=22, label=m, zorder=3)
    ax.hlines(y, p[models].min(axis=1), p[models].max(axis=1), color="grey", lw=0.8, zorder=2)
    ax.set_yticks(y, [f"{s} ({n})" for s, n in zip(p.index, p["n_pos"])], fontsize=8)
    ax.axvline(0.5, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("ROC-AUC")
    ax.set_ylabel("species (positive test windows)")
    cut = f" ({len(per) - len(p)} middle species not shown)" if len(p) < len(per) else ""
    ax.set_title("Per-species AUC, worst first" + cut)
    ax.legend(loc="lower left", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def plot_auc_vs_minutes(table: pd.DataFrame, *, budget_min: float = 90.0):
    """Macro AUC (with CI) against projected minutes for 700 test minutes on 2 cores; Pareto front."""
    plt = _plt()
    t = table.dropna(subset=["min_700_2_cores"])
    fig, ax = plt.subplots(figsize=(7, 4.5))
    if len(t):
        ax.errorbar(t["min_700_2_cores"], t["macro_auc"], yerr=[t["macro_auc"] - t["ci_lo"],
                    t["ci_hi"] - t["macro_auc"]], fmt="o", capsize=3)
        for r in t.itertuples():
            ax.annotate(r.model, (r.min_700_2_cores, r.macro_auc), textcoords="offset points",
                        xytext=(5, 5), fontsize=8)
        pts = list(zip(t["min_700_2_cores"], t["macro_auc"]))
        front = pareto(pts)
        ax.plot([pts[i][0] for i in front], [pts[i][1] for i in front], "--", alpha=0.6, label="Pareto front")
    ax.axvline(budget_min, color="red", alpha=0.4, label=f"{budget_min:g}-minute budget")
    ax.set_xscale("log")
    ax.set_xlabel("projected minutes for 700 one-minute files, 2 cores (log)")
    ax.set_ylabel("macro ROC-AUC")
    ax.set_title("Accuracy against inference time")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_windows(data_dir: str | Path, rows: pd.DataFrame, *, title: str = "", cfg=None):
    """Log-Mel spectrograms of the windows in ``rows`` (from :func:`worst_windows`), one row of
    panels per ``kind``, annotated with species, score and error (and the event's SNR when the data
    set lists its events)."""
    from vocalprint.config import MelConfig

    plt = _plt()
    cfg = cfg or MelConfig()
    kinds = list(dict.fromkeys(rows["kind"])) or [""]
    ncols = max([int((rows["kind"] == k).sum()) for k in kinds] + [1])
    fig, axes = plt.subplots(len(kinds), ncols, figsize=(4.2 * ncols, 3.2 * len(kinds)), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, kind in enumerate(kinds):
        for ax, r in zip(axes[i], rows[rows["kind"] == kind].itertuples()):
            ax.axis("on")
            m = window_logmel(data_dir, r.row_id, cfg=cfg)
            ax.imshow(m.T, origin="lower", aspect="auto", cmap="magma", vmin=np.percentile(m, 30), vmax=m.max(),
                      extent=(r.end_s - 5, r.end_s, -0.5, m.shape[1] - 0.5))
            _mel_yticks(ax, cfg, m.shape[1])
            ev = [e for e in window_events(data_dir, r.row_id) if e.get("label") == r.species]
            snr = f", SNR {ev[0]['snr_db']:+.0f} dB" if ev and "snr_db" in ev[0] else ""
            ax.set_title(f"{r.row_id}\n{r.species} {r.kind}: score {r.score:.3f}, err {r.error:.2f}{snr}",
                         fontsize=8)
            ax.set_xlabel("s")
    fig.suptitle(title if len(rows) else f"{title}: no window with an error above 0")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- tokens


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


def plot_token_gallery(mel_dir: Path, examples: dict[int, pd.DataFrame], *, why: dict[int, str] | None = None,
                       context: int = 15, cfg=None):
    """One row per token: the log-Mel context of its frames nearest the centroid (centre frame marked)."""
    from vocalprint.config import MelConfig

    plt = _plt()
    cfg = cfg or MelConfig()
    ncols = max([len(e) for e in examples.values()] + [1])
    fig, axes = plt.subplots(len(examples), ncols, figsize=(1.5 * ncols + 1, 1.9 * len(examples)), squeeze=False)
    for row, (t, ex) in zip(axes, examples.items()):
        pat = frame_patches(mel_dir, ex, context=context)
        for j, ax in enumerate(row):
            ax.set_xticks([])
            ax.set_yticks([])
            if j >= len(pat):
                ax.axis("off")
                continue
            p = pat[j]
            ax.imshow(p, origin="lower", aspect="auto", cmap="magma", vmin=p.max() - 70, vmax=p.max())
            ax.axvline(context, color="cyan", lw=0.7, alpha=0.7)
            name = Path(ex["name"].iloc[j])
            ax.set_title(f"{name.parent.name}/{name.stem}"[-22:], fontsize=6)
        if len(pat):
            _mel_yticks(row[0], cfg, pat.shape[1])
        row[0].set_ylabel(f"token {t}\n{(why or {}).get(t, '')}\nkHz", fontsize=7)
    fig.suptitle(f"Frames nearest each centroid (±{context} frames of context; centre marked)")
    fig.tight_layout()
    return fig


def plot_token_usage(total: np.ndarray, usage: pd.DataFrame):
    """Left: rank-frequency of all tokens (log-log). Right: entropy of each species' distribution."""
    plt = _plt()
    k = len(total)
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, max(4, 0.22 * len(usage) + 1.5)),
                               gridspec_kw={"width_ratios": [1, 1.2]})
    c = np.sort(total)[::-1]
    a.loglog(np.arange(1, k + 1), np.maximum(c, 0.8), lw=1.5)
    a.set_xlabel("token rank")
    a.set_ylabel("frames")
    a.set_title(f"Token frequency: {int((total > 0).sum())} of {k} used, "
                f"H = {entropy_bits(total):.2f} of {np.log2(k):.2f} bits")
    a.grid(alpha=0.3, which="both")
    y = np.arange(len(usage))[::-1]
    n_eq = usage.attrs.get("equal_frames")
    b.barh(y, usage["entropy_eq_bits"], color="tab:blue", alpha=0.8, label=f"{n_eq} frames per species")
    b.scatter(usage["entropy_bits"], y, color="black", s=10, zorder=3, label="all the species' frames")
    b.axvline(np.log2(k), color="red", ls=":", label=f"uniform over K={k}")
    b.axvline(entropy_bits(total), color="grey", ls="--", label="all frames, all files")
    b.set_yticks(y, [f"{s} ({f})" for s, f in zip(usage["species"], usage["frames"])], fontsize=7)
    b.set_xlabel("entropy of the species' token distribution (bits)")
    b.set_title("Token entropy per species (frames), most focused at the top")
    b.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2)
    fig.tight_layout()
    return fig


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


def plot_embedding(xy: np.ndarray, labels: np.ndarray, *, ratio: np.ndarray | None = None, max_species: int = 36):
    """2-D scatter of window embeddings, one colour-and-marker per species; species beyond the
    ``max_species`` with the most windows are drawn as small grey dots."""
    plt = _plt()
    labels = np.asarray(labels)
    sp, cnt = np.unique(labels, return_counts=True)
    top = list(sp[np.argsort(-cnt, kind="stable")][:max_species])
    colours = [c for i, c in enumerate(plt.get_cmap("tab10").colors) if i != 7]  # no grey
    markers = "o^sDvP*X"
    fig, ax = plt.subplots(figsize=(9.5, 7))
    rest = ~np.isin(labels, top)
    if rest.any():
        ax.scatter(*xy[rest].T, s=5, c="lightgrey", label=f"{len(sp) - len(top)} other species")
    for i, s in enumerate(sorted(top)):
        m = labels == s
        ax.scatter(*xy[m].T, s=18, color=colours[i % len(colours)], marker=markers[(i // len(colours)) % len(markers)],
                   label=s, alpha=0.85)
    r = ratio if ratio is not None else [np.nan, np.nan]
    ax.set_xlabel(f"PC1 ({100 * r[0]:.0f}% of variance)")
    ax.set_ylabel(f"PC2 ({100 * r[1]:.0f}% of variance)")
    ax.set_title(f"Training windows: pooled token embeddings (PCA), {len(labels)} windows")
    ax.legend(fontsize=7, ncol=1 + len(top) // 16, loc="center left", bbox_to_anchor=(1.01, 0.5), markerscale=1.2)
    fig.tight_layout()
    return fig


def notebook_setup(*, dpi: int = 90) -> None:
    """Figure resolution for a notebook (keeps executed copies small); quiet tqdm's widget warning."""
    import warnings

    import matplotlib

    matplotlib.rcParams["figure.dpi"] = dpi
    warnings.filterwarnings("ignore", message="IProgress not found")


def show(fig) -> None:
    """Display ``fig`` now (inside a loop, between tables) and close it so it is not shown twice."""
    from IPython.display import display

    display(fig)
    _plt().close(fig)
