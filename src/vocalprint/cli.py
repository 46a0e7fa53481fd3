"""``python -m vocalprint STAGE``: the one place that configures logging and reads the environment."""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import time
from pathlib import Path

from vocalprint import config as C

log = logging.getLogger("vocalprint")
STAGES = ("demo-data", "mels", "tokens", "w2v", "features", "train", "teacher", "distill", "submit", "evaluate",
          "bench", "export", "select", "models", "config", "plan")


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="vocalprint", description=__doc__)
    ap.add_argument("stage", choices=STAGES, help="a stage; `models` lists the models; `config show` prints "
                    "the resolved configuration")
    ap.add_argument("what", nargs="?", choices=("show",), help="config: what to do (show)")
    ap.add_argument("--data", help="dataset root (default $DATA_DIR, Kaggle input, or data/demo)")
    ap.add_argument("--model", default=None, help="model name (default submit.model)")
    ap.add_argument("--config", help="YAML file with config sections")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config field")
    ap.add_argument("--artifacts", default=os.environ.get("VOCALPRINT_ARTIFACTS", "artifacts"))
    ap.add_argument("--out", default=None, help="output file/folder of submit, evaluate, demo-data")
    ap.add_argument("--budget-min", type=float, default=None, help="submit time budget in minutes")
    ap.add_argument("--cores", type=int, default=None, help="core count to project timings to")
    ap.add_argument("--seed", type=int, default=0, help="demo-data seed")
    ap.add_argument("--scale", type=float, default=None, metavar="F", help="demo-data: a synthetic competition at "
                    "F x BirdCLEF+ 2025 size (206 classes, ~28,564*F clips; F=1 is full size) instead of the small demo")
    ap.add_argument("--train-soundscapes", type=int, default=None, metavar="N", help="demo-data --scale: write "
                    "only the first N unlabelled train soundscapes (the full set's files; default all)")
    ap.add_argument("--bundle", default=None, help="submit: a model bundle folder (no training data needed)")
    ap.add_argument("--models", default=None, help="bench: comma-separated models (default: the registry's "
                    "bench list); name@section.field=value@... benches a model under other settings")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=os.environ.get("VOCALPRINT_LOG", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for noisy in ("gensim", "numba", "matplotlib", "absl", "faiss"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    t0 = time.perf_counter()
    from vocalprint.core.artifacts import ArtifactError
    from vocalprint.data.dataset import DatasetError
    from vocalprint.serving.submission import SubmissionError

    try:
        code = _run(args)
    except (C.ConfigError, DatasetError, ArtifactError, SubmissionError, FileNotFoundError) as e:
        log.error("%s failed: %s", args.stage, e)
        return 2
    log.info("%s: done in %.1f s", args.stage, time.perf_counter() - t0)
    return code


def _run(args) -> int:
    from vocalprint.data import dataset

    if args.stage == "models":
        from vocalprint.models import help_table

        print(help_table())
        return 0
    if args.stage == "demo-data":
        if args.scale is not None:
            from vocalprint.data.scale import make_scaled

            if not 0 < args.scale <= 10:
                log.error("demo-data: --scale must be in (0, 10], got %g", args.scale)
                return 2

            try:
                make_scaled(Path(args.out or f"data/scaled-{args.scale:g}"), scale=args.scale, seed=args.seed,
                            train_soundscapes=args.train_soundscapes)
            except ValueError as e:  # a bad argument, found before anything is written
                log.error("%s", e)
                return 2
            return 0
        from vocalprint.data.demo import make_demo

        make_demo(Path(args.out or "data/demo"), seed=args.seed)
        return 0
    cfg = C.load(args.config, args.set)
    if args.budget_min is not None:
        cfg = C.override(cfg, "submit.budget_min", args.budget_min)
    if args.model:
        cfg = C.override(cfg, "submit.model", args.model)
    model = cfg.submit.model
    from vocalprint import models

    last = (cfg.submit.last_resort,) if cfg.submit.last_resort else ()
    for m in (model, *cfg.submit.fallback, *cfg.submit.members, *last):  # every model name, before any work
        models.get(m)
    if args.stage == "config":
        import yaml

        print(yaml.safe_dump(C.to_dict(models.get(model).configure(cfg)), sort_keys=False), end="")
        return 0
    root = Path(args.artifacts)
    data_root = dataset.find_root(args.data)
    if args.stage == "evaluate":
        return _evaluate(data_root, Path(args.out or "submission/submission.csv"), model, root)
    if args.stage == "select":
        from vocalprint.tools import select

        select.run(data_root, root, budget_min=cfg.submit.budget_min, safety=cfg.submit.safety)
        return 0
    ds = dataset.load(data_root, require_train=not (args.stage == "submit" and args.bundle))
    from vocalprint.core.parallel import executor

    with executor(cfg.run.executor, n_workers=cfg.run.n_jobs):
        return _stage(args, cfg, ds, root, model)


def _stage(args, cfg, ds, root: Path, model: str) -> int:
    from vocalprint import models, pipeline

    log.info("data %s: %d species, %d training files, %d train soundscapes, %d test soundscapes",
             ds.root, len(ds.species), len(ds.train), len(ds.train_soundscapes), len(ds.test_soundscapes))
    if args.stage == "plan":
        from vocalprint import plan

        print(plan.table(model, plan.plan(cfg, ds, root, model), plan.peak_rss_gib(root, ds, model, cfg),
                         plan.peak_disk_gb(root, ds, model, cfg)))
        return 0
    if args.stage == "mels":
        pipeline.mels(cfg, ds, root)
    elif args.stage == "tokens":
        pipeline.tokens_(cfg, ds, root)
    elif args.stage == "w2v":
        pipeline.w2v_(cfg, ds, root)
    elif args.stage == "features":
        pipeline.features_(cfg, ds, root)
    elif args.stage == "train":
        models.train(cfg, ds, root, model)
    elif args.stage == "teacher":
        pipeline.teacher_features(cfg, ds, root)
    elif args.stage == "distill":
        pipeline.distill(models.get(model).configure(cfg), ds, root)
    elif args.stage == "export":
        from vocalprint.serving.bundle import save_bundle

        out = Path(args.out or f"{root}/bundles/{model}")
        save_bundle(models.predictor(cfg, ds, root, model), out, info={"data": str(ds.root)})
        log.info("export: %s written to %s", model, out)
    elif args.stage == "bench":
        from vocalprint.tools import bench

        items = models.variant_items(args.models) if args.models else list(models.BENCH_DEFAULT)
        preds, variants = [], [models.variant(cfg, i) for i in items]  # all checked first
        for item, (name, vcfg) in zip(items, variants):
            preds.append(models.predictor(vcfg, ds, root, name))
            preds[-1].name = item  # a variant's row keeps its settings in its name
        bench.run(cfg, ds, preds, root, configs=[vcfg for _, vcfg in variants])
    elif args.stage == "submit":
        from vocalprint.serving import submit

        if args.bundle:
            from vocalprint.serving.bundle import load_bundle
            from vocalprint.tools.kaggle.kit import compare_species  # warns when the species differ

            preds = [load_bundle(Path(b)) for b in args.bundle.split(",")]
            for b, p in zip(args.bundle.split(","), preds):
                compare_species({"species": list(p.species)}, list(ds.species), bundle=f"bundle {b}")
            for p in preds:  # the bundle's model config, this run's budget and worker settings
                p.cfg = dataclasses.replace(p.cfg, submit=cfg.submit, run=cfg.run)
            cfg = preds[0].cfg
            if cfg.submit.last_resort == "loudness" and all(p.name != "loudness" for p in preds):
                from vocalprint.tokens.predictor import LoudnessPredictor  # needs no training data

                last = LoudnessPredictor(cfg=cfg, species=list(preds[0].species))
                last.prior = getattr(preds[0], "prior", None)
                preds.append(last)
        else:
            chain = [model, *[m for m in cfg.submit.fallback if m != model]]
            if cfg.submit.last_resort and cfg.submit.last_resort not in chain:
                chain.append(cfg.submit.last_resort)
            preds = [models.predictor(cfg, ds, root, m) for m in chain]
        out = Path(args.out or "submission/submission.csv")
        rep = submit.run(cfg, ds, preds, out, cores=args.cores, hard_deadline=True)
        print(json.dumps({k: rep[k] for k in ("model", "rows", "predicted_files", "elapsed_s",
                                              "audio_minutes", "projection_700_min")}, indent=1))
    return 0


def _evaluate(data_root: Path, sub: Path, model: str, root: Path) -> int:
    from vocalprint.tools.evaluate import evaluate, summary

    print(summary(evaluate(data_root, sub, model, root)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
