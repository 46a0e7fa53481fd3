"""Teacher stages: the prepared pretrained model, its cached outputs on training-side audio, and
teacher features of the training windows (for the probe head, the student and soft targets).

The cache holds per file the 3-s chunk starts, the chunk logits of the competition species the
teacher knows (NaN columns for the others) and the chunk embeddings (float16), so any window can
be pooled later without running the teacher again.

It comes in two parts (:data:`PARTS`): ``clips``, the focal recordings at ``teacher.probe_stride_s``,
all a probe needs, and ``all``, the clips and the unlabelled train soundscapes at
``teacher.stride_s``, for the students and teacher-taught tables. At BirdCLEF size the soundscapes
are about a third of the teacher's work, so a model that needs only the clips does not pay for
them. When both parts use one stride, a complete ``all`` cache serves ``clips`` too, and an
``all`` cache built after a ``clips`` one links the clips' files instead of running them again.
Where the soundscapes hold more 5-s windows than a student takes (``distill.max_soundscape_windows``),
``all`` covers a seeded sample of them (:func:`soundscape_sample`). Where a class holds more
training windows than ``teacher.max_class_windows``, both parts cover a seeded sample of its whole
recordings (:mod:`vocalprint.teacher.sample`), and the teacher features keep the windows of those.
"""
from __future__ import annotations

import logging
import os
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from vocalprint.core import artifacts as A
from vocalprint.audio import clips, mel as M
from vocalprint.audio.decode import AudioError, load_audio
from vocalprint.config import Config, ConfigError, fingerprint
from vocalprint.data.dataset import Dataset
from vocalprint.core.parallel import map_files, process_cached
from vocalprint.teacher.sample import clip_sample

log = logging.getLogger(__name__)
CHUNK_S = {"birdnet": 3.0, "perch": 5.0}
PARTS = ("clips", "all")
CLIP_SAMPLE = "clip_sample.txt"  # in a cache built on a sample of the clips: the clips' names, one per line
_SAMPLES: dict[tuple, tuple[str, ...] | None] = {}  # soundscape_sample's answers, per data set and setting


def _labels_part(cfg: Config) -> tuple[str, ...]:
    """The custom label list in a key only when one is given (keys of existing caches stay)."""
    return (f"labels={cfg.teacher.labels_path}",) if cfg.teacher.labels_path else ()


def model_key(cfg: Config) -> str:
    t = cfg.teacher
    return fingerprint("teacher-model", t.model, t.variant, t.model_path, t.perch_dir, *_labels_part(cfg))


def prepare(cfg: Config, root: Path) -> Path:
    """``<root>/teacher-model/<key>/`` with ``model.tflite`` (embedding exposed) and ``labels.txt``."""
    from vocalprint.teacher.labels import birdnet_files
    from vocalprint.teacher.perch import convert_savedmodel
    from vocalprint.teacher.surgery import expose_embedding

    t = cfg.teacher
    final = A.stage_dir(root, "teacher-model", model_key(cfg))
    if A.is_complete(final):
        return final
    work = A.partial_dir(final)
    timer = A.Timer("teacher-model")
    with timer("prepare"):
        if t.model == "birdnet":
            src, labels = (Path(t.model_path), birdnet_files()[1]) if t.model_path else birdnet_files()
            if t.labels_path:  # e.g. a BirdNET custom classifier with its own label list
                labels = Path(t.labels_path)
            for f in (src, labels):
                if not Path(f).is_file():
                    raise ConfigError(f"teacher: {f} does not exist")
            fp32 = work / "fp32.tflite"
            if not fp32.is_file():
                expose_embedding(src, fp32)
            if t.variant == "fp32":
                fp32.rename(work / "model.tflite")
            else:
                from vocalprint.teacher.quantize import MODES, quantize_tflite

                if t.variant not in MODES:
                    raise ConfigError(f"teacher.variant must be fp32 or one of {MODES}, got {t.variant!r}")
                quantize_tflite(fp32, work / "model.tflite", mode=t.variant)
                fp32.unlink()
            shutil.copyfile(labels, work / "labels.txt")
        elif t.model == "perch":
            if not t.perch_dir:
                raise ConfigError("teacher.model=perch needs teacher.perch_dir (or PERCH_DIR=<folder>)")
            d = Path(t.perch_dir)
            quant = {"fp32": "none", "float16": "float16", "dynamic_int8": "dynamic"}.get(t.variant)
            if quant is None:
                raise ConfigError(f"teacher.variant {t.variant!r} is not offered for Perch (fp32, float16, dynamic_int8)")
            convert_savedmodel(d, work / "model.tflite", quant=quant)
            lab = next((p for p in (d / "assets" / "label.csv", d / "assets" / "labels.csv") if p.is_file()), None)
            if lab is None:
                raise ConfigError(f"{d}: no assets/label.csv with the Perch class names")
            shutil.copyfile(lab, work / "labels.txt")
        else:
            raise ConfigError(f"teacher.model must be birdnet or perch, got {t.model!r}")
    return A.finish(work, final, {"stage": "teacher-model", "config": t, "seconds": timer.seconds})


def runner(model_dir: Path, cfg: Config):
    """The teacher runner (BirdNET or Perch) for a prepared model folder."""
    from vocalprint.teacher.predictor import open_teacher

    return open_teacher(A.verified(model_dir / "model.tflite"), model_dir / "labels.txt", cfg)


def species_columns(model_dir: Path, ds: Dataset, cfg: Config) -> np.ndarray:
    """Teacher class index of each submission column, -1 where the teacher does not know it."""
    from vocalprint.teacher.labels import match_species, read_labels, read_perch_labels

    tax = pd.read_csv(ds.root / "taxonomy.csv")
    read = read_perch_labels if cfg.teacher.model == "perch" else read_labels
    match = match_species(tax, read(model_dir / "labels.txt"))
    return match.columns(list(ds.species))


def chunk_outputs(net, x: np.ndarray, *, cfg: Config) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(chunk starts [m] s, logits [m, C], embeddings [m, D]) of one file's audio."""
    if cfg.teacher.model == "perch":  # Perch scores whole 5-s windows: a chunk is a window
        logits, emb = net.window_scores(x)
        return np.arange(len(logits), dtype=np.float32) * CHUNK_S["perch"], logits, emb
    return net.chunk_outputs(x, stride_s=cfg.teacher.stride_s, sr=cfg.audio.sr)


def select_species(logits: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Teacher logits [..., C] -> the competition species' columns [..., S] float32, NaN where
    the teacher does not know a species (``cols`` from :func:`species_columns`, -1 = unknown)."""
    cols = np.asarray(cols)
    sel = np.full(np.shape(logits)[:-1] + (len(cols),), np.nan, np.float32)
    sel[..., cols >= 0] = np.asarray(logits)[..., cols[cols >= 0]]
    return sel


def _cache_file(path: Path, out: Path, model_dir: str, cols: np.ndarray, cfg: Config) -> str:
    if out.is_file():
        return ""
    try:
        x = load_audio(path, sr=cfg.audio.sr)
    except AudioError as e:
        return str(e)
    net = process_cached(("teacher", model_dir, cfg.teacher), lambda: runner(Path(model_dir), cfg))
    starts, logits, emb = chunk_outputs(net, x, cfg=cfg)
    sel = select_species(logits, cols)
    with A.atomic_path(out) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, starts=starts.astype(np.float32), logits=sel, emb=emb.astype(np.float16))
    return ""


def part_stride(cfg: Config, part: str) -> float:
    """The chunk hop of the cache of ``part``."""
    if part not in PARTS:
        raise ValueError(f"teacher cache part must be one of {PARTS}, got {part!r}")
    t = cfg.teacher
    return (t.probe_stride_s or t.stride_s) if part == "clips" else t.stride_s


def soundscape_sample(cfg: Config, ds: Dataset) -> tuple[str, ...] | None:
    """Names (``train_soundscapes/<file>``) of the unlabelled train soundscapes the students' cache
    covers when they hold more 5-s windows than ``distill.max_soundscape_windows``: whole files in a
    seeded order (``distill.seed``) until their windows, counted from the file headers, reach it.
    None (every soundscape) when they all fit, when the cap is 0, or with self-training rounds
    (``distill.rounds``), which pseudo-label every soundscape. A file whose header cannot be read is
    left out with a warning (the teacher could not run it either)."""
    d, paths = cfg.distill, list(ds.train_soundscapes)
    if d.max_soundscape_windows <= 0 or d.rounds > 0 or not paths:
        return None
    k = (ds.fingerprint(), d.max_soundscape_windows, d.seed, cfg.audio.window_s)
    if k not in _SAMPLES:
        import soundfile as sf

        chosen, total = [], 0
        for i in np.random.default_rng(d.seed).permutation(len(paths)):
            if total >= d.max_soundscape_windows:
                break
            try:
                total += int(sf.info(str(paths[i])).duration // cfg.audio.window_s)
            except (RuntimeError, OSError, ValueError) as e:  # soundfile's errors are RuntimeErrors
                log.warning("teacher: skipped %s: %s", paths[i], e)
                continue
            chosen.append(i)
        whole = total < d.max_soundscape_windows or len(chosen) == len(paths)
        _SAMPLES[k] = None if whole else tuple(sorted(f"train_soundscapes/{paths[i].name}" for i in chosen))
        if _SAMPLES[k]:
            log.info("teacher: %d of %d train soundscapes (%d 5-s windows) for the students "
                     "(distill.max_soundscape_windows=%d)", len(chosen), len(paths), total, d.max_soundscape_windows)
    return _SAMPLES[k]


def cache_key(cfg: Config, ds: Dataset, part: str = "all") -> str:
    """Key of the teacher cache of ``part`` (``all``: the key caches were always built under; with
    a sample of the soundscapes or of the clips, that sample's names too)."""
    t = cfg.teacher
    sample = soundscape_sample(cfg, ds) if part == "all" else None
    kept = clip_sample(cfg, ds)
    return fingerprint("teacher", t.model, t.variant, part_stride(cfg, part), t.model_path, t.perch_dir,
                       *_labels_part(cfg), cfg.audio, ds.fingerprint(), list(ds.species),
                       *(("part=clips",) if part == "clips" else ()),
                       *((f"soundscapes={fingerprint(list(sample))}",) if sample else ()),
                       *((f"clips={fingerprint(list(kept))}",) if kept else ()))


def _shared(cfg: Config) -> bool:
    """Whether the clips part is the clips of the full cache (both at one stride)."""
    return part_stride(cfg, "clips") == part_stride(cfg, "all")


def cache_dir(cfg: Config, ds: Dataset, root: Path, part: str = "all") -> Path:
    """The folder that serves ``part``: for ``clips`` a complete ``all`` cache at the same stride."""
    full = A.stage_dir(root, "teacher", cache_key(cfg, ds, "all"))
    if part == "all" or (_shared(cfg) and A.is_complete(full)):
        return full
    return A.stage_dir(root, "teacher", cache_key(cfg, ds, part))


def _link_finished(src: Path, dst: Path) -> int:
    """Hard-link (or copy, across file systems) the chunk files of a complete cache ``src`` into the
    work folder ``dst`` (files already there stay); returns how many it placed."""
    if not A.is_complete(src):
        return 0
    dst.mkdir(parents=True, exist_ok=True)
    n = 0
    for f in (src / "chunks").glob("*.npz"):
        out = dst / f.name
        if out.exists():
            continue
        try:
            os.link(f, out)
        except OSError:
            shutil.copyfile(f, out)
        n += 1
    return n


def run(cfg: Config, ds: Dataset, root: Path, part: str = "all") -> Path:
    """Teacher outputs for the training-side files of ``part`` -> ``<root>/teacher/<key>/chunks/*.npz``."""
    final = cache_dir(cfg, ds, root, part)
    if A.is_complete(final):
        log.info("teacher: cached at %s", final)
        return final
    cfg = replace(cfg, teacher=replace(cfg.teacher, stride_s=part_stride(cfg, part)))
    model_dir = prepare(cfg, root)
    cols = species_columns(model_dir, ds, cfg)
    work = A.partial_dir(final)
    items = M.audio_items(ds)
    sample = soundscape_sample(cfg, ds) if part == "all" else None
    kept = clip_sample(cfg, ds)
    if kept is not None:
        items = items[(items["split"] != "train_audio") | items["name"].isin(set(kept))]
    if part == "clips":
        items = items[items["split"] == "train_audio"]
    elif sample is not None:
        items = items[(items["split"] == "train_audio") | items["name"].isin(set(sample))]
    reused = 0
    if part == "all" and _shared(cfg):
        reused = _link_finished(A.stage_dir(root, "teacher", cache_key(cfg, ds, "clips")), work / "chunks")
        if reused:
            log.info("teacher: %d focal clips reused from the clips-only cache", reused)
    timer = A.Timer("teacher")
    with timer("teacher"):
        errs = map_files(_cache_file, [(p, work / "chunks" / (M.npy_name(n)[:-4] + ".npz"), str(model_dir), cols, cfg)
                                       for p, n in zip(items["path"], items["name"])],
                         n_jobs=cfg.run.n_jobs, desc="teacher", progress=cfg.run.progress,
                         on_error=lambda t, e: f"{t[0]}: {type(e).__name__}: {e}")
    for p, e in zip(items["path"], errs):
        if e:
            log.warning("teacher: skipped %s: %s", p, e)
    if len(errs) and all(errs):
        from vocalprint.data.dataset import DatasetError

        raise DatasetError(f"teacher: no training file could be run through the teacher (e.g. {errs[0]})")
    if kept is not None:
        with A.atomic_path(work / CLIP_SAMPLE) as tmp:
            Path(tmp).write_text("".join(f"{n}\n" for n in kept))
    return A.finish(work, final, {"stage": "teacher", "part": part, "config": cfg.teacher, "model": model_dir.name,
                                  "species": list(ds.species), "columns": cols.tolist(),
                                  "n_matched": int((cols >= 0).sum()), "n_files": len(items),
                                  "n_soundscapes": int((items["split"] == "train_soundscapes").sum()),
                                  "soundscapes_sampled": sample is not None,
                                  "clips_sampled": kept is not None,
                                  "n_clips": int((items["split"] == "train_audio").sum()),
                                  "n_reused": reused, "n_skipped": sum(bool(e) for e in errs),
                                  "seconds": timer.seconds})


def pool(starts: np.ndarray, logits: np.ndarray, emb: np.ndarray, bounds_s: np.ndarray, *,
         chunk_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Pool cached chunks into windows [n, 2] (start, stop seconds) with the same rule as
    inference (:func:`vocalprint.teacher.windows.assign_bounds`): logits max, embeddings mean, float32."""
    from vocalprint.teacher.windows import assign_bounds, pool_groups

    return pool_groups(assign_bounds(starts, chunk_s=chunk_s, bounds_s=bounds_s), logits, emb)


def features_key(cfg: Config, teacher_key: str, windows_key: str) -> str:
    return fingerprint("tfeatures", teacher_key, windows_key)


def features(cfg: Config, cache_dir: Path, win_dir: Path, root: Path) -> Path:
    """Teacher embedding (``X_<teacher>.npy``) and logits (``T.npy``) of every training window
    (:mod:`vocalprint.audio.clips`), with its labels and groups, for the probe head and distillation.
    A cache of a sample of the clips (:data:`CLIP_SAMPLE`) keeps only the windows of those clips."""
    final = A.stage_dir(root, "tfeatures", features_key(cfg, cache_dir.name, win_dir.name))
    if A.is_complete(final):
        return final
    work = A.partial_dir(final)
    man = A.manifest(win_dir)
    windows = pd.read_csv(win_dir / "windows.csv")
    rows = None
    if (cache_dir / CLIP_SAMPLE).is_file():
        kept = set((cache_dir / CLIP_SAMPLE).read_text().split("\n")) - {""}
        rows = np.flatnonzero(windows["name"].isin(kept).to_numpy())
        log.info("tfeatures: %d of %d training windows, of the %d clips the teacher ran", len(rows), len(windows),
                 len(kept))
        windows = windows.iloc[rows].reset_index(drop=True)
    sec = cfg.mel.hop / cfg.audio.sr
    chunk_s = CHUNK_S[cfg.teacher.model]
    n_sp = len(man["species"])
    X = np.zeros((len(windows), 0), np.float32)
    T = np.full((len(windows), n_sp), np.nan, np.float32)
    ok = np.zeros(len(windows), bool)
    timer = A.Timer("tfeatures")
    with timer("pool"):
        parts = []
        for name, grp in windows.groupby("name", sort=False):
            f = cache_dir / "chunks" / (M.npy_name(name)[:-4] + ".npz")
            if not f.is_file():
                continue
            z = np.load(f)
            lo, em = pool(z["starts"], z["logits"], z["emb"], grp[["start", "stop"]].to_numpy() * sec, chunk_s=chunk_s)
            parts.append((grp.index.to_numpy(), lo, em))
        if parts:
            X = np.zeros((len(windows), parts[0][2].shape[1]), np.float32)
            for idx, lo, em in parts:
                X[idx], T[idx], ok[idx] = em, lo, True
    if (~ok).any():
        log.warning("tfeatures: %d training windows have no teacher output (file skipped); zeros", int((~ok).sum()))
    A.save_npy(work / f"X_{cfg.teacher.model}.npy", X)
    A.save_npy(work / "T.npy", T)
    clips.copy_labels(win_dir, work, rows)
    return A.finish(work, final, {"stage": "tfeatures", "upstream": [cache_dir.name, win_dir.name],
                                  "species": man["species"], "n_windows": len(windows),
                                  "n_windows_all": int(man["n_windows"]),
                                  "n_missing": int((~ok).sum()), "seconds": timer.seconds})
