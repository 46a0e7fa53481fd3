"""``make scale``'s report: the markdown table of a scale.json (measured points, exponents, the
F = 1 projection against the goals) and its plot. Reads what :mod:`vocalprint.scaling.fit` writes."""
from __future__ import annotations

from pathlib import Path

from vocalprint.scaling.fit import GOALS, RECOMMENDED_TRAIN_HOURS, SUBMIT, build_order


def _fmt_s(s) -> str:
    if s is None:
        return "n/a"
    return f"{s:.1f} s" if s < 120 else (f"{s / 60:.1f} min" if s < 7200 else f"{s / 3600:.1f} h")


def _fmt_mb(mb) -> str:
    return "n/a" if mb is None else (f"{mb:.1f} MB" if mb < 1000 else f"{mb / 1000:.1f} GB")


def _fmt_b(b) -> str:
    return "n/a" if b is None else f"{b:.2f}"


def markdown(res: dict) -> str:
    """model | stage | measured at each F | exponent | projected at F = 1 | goal (rows in **bold**:
    the model's totals against the goals)."""
    fs, cores, tick = res["scales"], res["cores_projected"], {True: "met", False: "NOT met", None: "n/a"}
    head = ["model", "stage"] + [f"F={f:g} (measured)" for f in fs] + ["b (time / disk)", "F=1 (projected)", "goal"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def row(model, name, cells, b, proj, goal=""):
        lines.append(f"| {model} | {name} | " + " | ".join(cells) + f" | {b} | {proj} | {goal} |")

    for model, m in res["models"].items():
        disk: dict = {}
        why = {c["scale"]: ("timed out" if c["rc"] == "timeout" else f"failed (rc {c['rc']})") + f" in {c['command']}"
               f" after {_fmt_s(c['wall_s'])}" for c in m["commands"] if c["rc"] != 0}
        for stage in build_order(model, m["stages"]):
            s = m["stages"][stage]
            by = {p["scale"]: p for p in s["measured"]}
            for f, p in by.items():
                disk[f] = disk.get(f, 0.0) + p["disk_mb"]
            proj = f"{_fmt_s(s['projected_full_seconds'])}, {_fmt_mb(s['disk_mb'])}"
            if stage != SUBMIT and s["parallel_share"]:
                proj += f"; {_fmt_s(s['projected_full_seconds_cores'])} on {cores} cores"
            row(model, stage, [f"{_fmt_s(by[f]['seconds'])}, {_fmt_mb(by[f]['disk_mb'])} (x={by[f]['effective_scale']:.4f})"
                               if f in by else why.get(f, "-") for f in fs],
                f"{_fmt_b(s['exponent'])} / {_fmt_b(s['disk_exponent'])}", proj)
        full, ok, fits = m["projected_full"], m["projected_full"]["goals_met"], m["command_fits"].get("train", {})
        train = {c["scale"]: c for c in m["commands"] if c["command"] == "train"}
        rss: dict = {}
        for c in m["commands"]:
            rss[c["scale"]] = max(rss.get(c["scale"], 0), c["peak_rss_mb"])
        h2, h4, cpu = (full[k] for k in ("train_hours_2_cores", "train_hours_4_cores", "train_cpu_hours"))
        row(model, "**train wall**", [_fmt_s(train[f]["wall_s"]) + ("" if train[f]["rc"] == 0 else " (killed)")
                                      if f in train else "-" for f in fs],
            _fmt_b(fits.get("wall_s", {}).get("exponent")),
            f"{_fmt_s(None if h4 is None else h4 * 3600)} on {cores} cores ({_fmt_s(None if h2 is None else h2 * 3600)} on 2)",
            f"{full.get('goals', GOALS)['train_hours_4_cores']:g} h: {tick[ok['train_hours_4_cores']]}")
        row(model, "**train CPU**", [_fmt_s(train[f]["cpu_s"]) if f in train else "-" for f in fs],
            _fmt_b(fits.get("cpu_s", {}).get("exponent")), "n/a" if cpu is None else f"{cpu:.1f} CPU h")
        row(model, "**peak RSS**", [f"{rss[f] / 1024:.2f} GiB" if f in rss else "-" for f in fs],
            " / ".join(f"{k} {_fmt_b(v['peak_rss_mb']['exponent'])}" for k, v in m["command_fits"].items()),
            "n/a" if full["peak_rss_gib"] is None else f"{full['peak_rss_gib']:.2f} GiB (affine in x: "
            f"{full['peak_rss_gib_affine']:.2f})",
            f"24 GiB: {tick[ok['peak_rss_gib']]}")
        peak = {c["scale"]: c["peak_disk_mb"] for c in m["commands"] if c["command"] == "train" and "peak_disk_mb" in c}
        pd = full.get("peak_disk_gb")
        row(model, "**disk** (kept; peak while training)",
            [(_fmt_mb(disk[f]) if f in disk else "-") + (f"; {_fmt_mb(peak[f])}" if f in peak else "") for f in fs],
            _fmt_b(fits.get("peak_disk_mb", {}).get("exponent")) if pd is not None else "",
            _fmt_mb(None if full["disk_gb"] is None else full["disk_gb"] * 1000)
            + ("" if pd is None else f"; {_fmt_mb(pd * 1000)}"), f"60 GB: {tick[ok['disk_gb']]}")
    for model, d in res.get("derived", {}).items():
        shared = (d["projected_full"] or {}).get("shared_clip_cache", {}).get("train_hours_4_cores")
        what = (f"**train wall** (sum of {' + '.join(d['members'])}"
                + (f", less the focal clips' teacher cache built once: {_fmt_s(shared * 3600)})" if shared else ")"))
        if d["projected_full"] is None:
            row(model, what, ["-" for _ in fs], "", f"not projected: {', '.join(d['unmeasured'])} not measured",
                f"{RECOMMENDED_TRAIN_HOURS:g} h: n/a")
            continue
        full, ok, g = d["projected_full"], d["projected_full"]["goals_met"], d["projected_full"]["goals"]
        row(model, what, ["-" for _ in fs], "",
            f"{_fmt_s(full['train_hours_4_cores'] * 3600)} on {cores} cores ({_fmt_s(full['train_hours_2_cores'] * 3600)} on 2)",
            f"{g['train_hours_4_cores']:g} h: {tick[ok['train_hours_4_cores']]}")
        row(model, "**peak RSS** (larger member)", ["-" for _ in fs], "", f"{full['peak_rss_gib']:.2f} GiB",
            f"24 GiB: {tick[ok['peak_rss_gib']]}")
        pd = full.get("peak_disk_gb")
        row(model, "**disk** (sum of members; peak while training)", ["-" for _ in fs], "",
            _fmt_mb(full["disk_gb"] * 1000) + ("" if pd is None else f"; {_fmt_mb(pd * 1000)}"),
            f"60 GB: {tick[ok['disk_gb']]}")
    return "\n".join(lines)


def plot(res: dict, path: Path) -> None:
    """Measured points and fitted lines per stage, log-log, one panel per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = list(res["models"])
    fig, axes = plt.subplots(1, max(1, len(names)), figsize=(4.5 * max(1, len(names)), 4), squeeze=False)
    for ax, model in zip(axes[0], names):
        for i, (stage, s) in enumerate(res["models"][model]["stages"].items()):
            c = f"C{i % 10}"
            xs = [p["effective_scale"] for p in s["measured"] if p["seconds"] > 0]
            ax.plot(xs, [p["seconds"] for p in s["measured"] if p["seconds"] > 0], "o", color=c, label=stage)
            if s["exponent"] is not None and xs:
                grid = np.geomspace(min(xs), 1.0, 30)
                ax.plot(grid, s["projected_full_seconds"] * grid ** s["exponent"], "--", color=c, lw=1)
        ax.set(xscale="log", yscale="log", xlabel="x (share of full size)", ylabel="wall seconds (2 workers)",
               title=model)
        ax.axvline(1.0, color="grey", lw=0.5)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
