"""The `make bench` JSON as the Markdown table docs/results.md shows, with each row's time as a
ratio of a reference row's (e.g. BirdNET as it ran before, benched in the same run).

    PYTHONPATH=src .venv/bin/python notebooks/research/bench_table.py artifacts/bench/bench.json \\
        --reference 'birdnet-zeroshot@teacher.chunk_batch=1@teacher.spectrogram=model'
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def markdown(res: dict, reference: str | None = None) -> str:
    rows = res["models"]
    ref = next((r for r in rows if r["model"] == reference), None)
    if reference and ref is None:
        raise SystemExit(f"no row named {reference!r}; rows: {[r['model'] for r in rows]}")
    head = ["model", "AUC", "s / audio min, 1 worker", "2 workers", "700 min, 2 cores", "4 cores", "peak GiB",
            "CPU s / audio min by stage (1 worker)"]
    if ref is not None:
        head.append("share of the reference's time, 1 worker / 2 workers")
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        auc = f"{r['macro_auc']:.3f}" if r.get("macro_auc") is not None else "-"
        stages = ", ".join(f"{k} {v:.3f}" for k, v in r["cpu_s_per_min"].items() if v >= 0.0005)
        cells = [f"`{r['model']}`", auc, f"{r['wall_s_per_min_1_worker']:.3f}", f"{r['wall_s_per_min_2_workers']:.3f}",
                 f"{r['projected_min_700_2_cores']:.1f} min", f"{r['projected_min_700_4_cores']:.1f}",
                 f"{r['peak_rss_gib']:.2f}", stages]
        if ref is not None:
            a = r["wall_s_per_min_1_worker"] / ref["wall_s_per_min_1_worker"]
            b = r["wall_s_per_min_2_workers"] / ref["wall_s_per_min_2_workers"]
            cells.append(f"1/{1 / a:.1f} / 1/{1 / b:.1f}")
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("json", type=Path)
    ap.add_argument("--reference", default=None, help="the row every other row's time is a share of")
    a = ap.parse_args()
    print(markdown(json.loads(a.json.read_text()), a.reference))


if __name__ == "__main__":
    main()
