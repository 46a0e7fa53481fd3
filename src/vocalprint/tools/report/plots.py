"""Every figure of the notebooks, plus the notebook display helpers. Each plot returns a
matplotlib figure; matplotlib is imported inside the functions, never when this module loads."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from vocalprint.tools.report.soundscapes import window_events, window_logmel
from vocalprint.tools.report.tokens import entropy_bits, frame_patches


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


def plot_paired_diff(paired: pd.DataFrame):
    """Each model's macro AUC minus the best model's, with the paired 95% interval (from
    :func:`~vocalprint.tools.report.results.paired_table`); an interval across 0 is a tie."""
    plt = _plt()
    t = paired.iloc[::-1]
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(t) + 1.5))
    y = np.arange(len(t))
    colours = ["tab:red" if v == "worse" else "tab:green" if v == "better" else "tab:blue" for v in t["verdict"]]
    for yi, r, c in zip(y, t.itertuples(), colours):
        err = np.nan_to_num(np.maximum([[r.diff_vs_best - r.ci_lo], [r.ci_hi - r.diff_vs_best]], 0))
        ax.errorbar(r.diff_vs_best, yi, xerr=err, fmt="o", capsize=4, color=c)
        label = "best" if r.verdict == "best" else f"{r.diff_vs_best:+.3f} [{r.ci_lo:+.3f}, {r.ci_hi:+.3f}] {r.verdict}"
        ax.annotate(label, (r.diff_vs_best, yi), textcoords="offset points", xytext=(0, 7), ha="center", fontsize=8)
    ax.axvline(0, color="grey", lw=0.8, ls=":")
    ax.set_yticks(y, t["model"])
    ax.set_ylim(-0.6, len(t) - 0.2)
    ax.set_xlabel("macro AUC minus the best model's (paired 95% CI: soundscape files resampled)")
    ax.set_title(f"Difference to the best model ({paired.attrs.get('best', paired['model'].iloc[0])})")
    fig.tight_layout()
    return fig


def plot_class_auc(cls: pd.DataFrame):
    """Macro AUC per taxonomic class (and overall) of every model (from
    :func:`~vocalprint.tools.report.results.class_table`); class labels show the scored species."""
    plt = _plt()
    cols = list(cls.columns)
    n_sp = cls.attrs.get("n_species", {})
    fig, ax = plt.subplots(figsize=(1.3 * len(cols) + 3, 4))
    x = np.arange(len(cols))
    for i, (m, r) in enumerate(cls.iterrows()):
        ax.scatter(x + (i - (len(cls) - 1) / 2) * 0.12, r.to_numpy(dtype=float), s=30, label=m, zorder=3)
    ax.axvline(len(cols) - 1.5, color="grey", lw=0.8)
    ax.axhline(0.5, color="grey", lw=0.8, ls=":")
    ax.set_xticks(x, [f"{c}\n({n_sp[c]} species)" if c in n_sp else "overall\nmacro AUC" if c == "macro_auc" else c
                      for c in cols], fontsize=8)
    ax.set_ylabel("macro ROC-AUC within the class")
    ax.set_title("AUC per taxonomic class (taxonomy.csv class_name)")
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.grid(axis="y", alpha=0.3)
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
    from vocalprint.tools.bench import pareto

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
    """Log-Mel spectrograms of the windows in ``rows`` (from
    :func:`~vocalprint.tools.report.results.worst_windows`), one row of panels per ``kind``,
    annotated with species, score and error (and the event's SNR when the data set lists its
    events)."""
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
