"""The ``tokens-nb`` stage: front-end frames of the focal clips and train soundscapes, synthetic
mixes (teacher-labelled when ``nb.teacher_weight > 0``), a K-means codebook per view, token counts
-> naive-Bayes tables and the score calibration, cached in ``artifacts/nb/<key>/``."""
from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vocalprint.tokens.nb.table import (add_counts, clip_targets, frame_activity, nb_table, taught_targets,
                                        teacher_probs, window_scores)
from vocalprint.tokens.nb.views import features, front_ends, tokens_cfg, view_front_ends, view_tokens, views

if TYPE_CHECKING:  # pragma: no cover
    from vocalprint.config import Config
    from vocalprint.data.dataset import Dataset

log = logging.getLogger(__name__)


def key(cfg: "Config", ds: "Dataset", teacher_key: str = "") -> str:
    from vocalprint.config import fingerprint

    if cfg.nb.teacher_weight > 0:  # the teacher's cache (its model, stride, ...) shapes the tables
        return fingerprint("nb", cfg.audio, cfg.mel, cfg.nb, ds.fingerprint(), teacher_key)
    return fingerprint("nb", cfg.audio, cfg.mel, cfg.nb, ds.fingerprint())


def uses_teacher(cfg: "Config") -> bool:
    w = cfg.nb.teacher_weight
    if not 0.0 <= w <= 1.0:
        from vocalprint.config import ConfigError

        raise ConfigError(f"nb.teacher_weight must be in [0, 1], got {w}")
    return w > 0


class _Teacher:
    """The teacher as the tables see it: window probabilities of the competition species (NaN where
    it does not know one) for mix audio (run now) and train soundscapes (from the teacher cache)."""

    def __init__(self, cfg: "Config", ds: "Dataset", root: Path, cache_dir: Path):
        from vocalprint.teacher import stage as teach

        self.cfg, self.cache_dir = cfg, Path(cache_dir)
        self.model_dir = teach.prepare(cfg, root)
        self.cols = teach.species_columns(self.model_dir, ds, cfg)
        self._net = None

    def window_prob(self, audio: np.ndarray) -> np.ndarray:
        """[S] probabilities of one 5-s window of audio: max over the teacher's chunks."""
        from vocalprint.teacher import stage as teach

        if self._net is None:
            self._net = teach.runner(self.model_dir, self.cfg)
        _, lo, _ = teach.chunk_outputs(self._net, audio, cfg=self.cfg)
        return teacher_probs(teach.select_species(lo, self.cols).max(axis=0))

    def soundscape_targets(self, name: str, n_frames: int) -> np.ndarray | None:
        """Frame targets [t, S] of a train soundscape: ``weight`` x the teacher's probability of the
        5-s window holding each frame, from the cached chunk logits; None if it has no cache entry."""
        from vocalprint.audio import mel as M
        from vocalprint.teacher import stage as teach
        from vocalprint.audio.decode import frame_windows
        from vocalprint.teacher.stage import CHUNK_S

        f = self.cache_dir / "chunks" / (M.npy_name(name)[:-4] + ".npz")
        if not f.is_file():
            return None
        c = self.cfg
        with np.load(f) as z:
            starts, logits, emb = z["starts"], z["logits"], z["emb"]
        n = max(1, int(np.ceil(n_frames * c.mel.hop / c.audio.sr / c.audio.window_s)))
        bounds_s = np.stack([np.arange(n), np.arange(1, n + 1)], 1) * c.audio.window_s
        lo, _ = teach.pool(starts, logits, emb, bounds_s, chunk_s=CHUNK_S[c.teacher.model])
        p = teacher_probs(lo)
        out = np.zeros((n_frames, len(self.cols)), np.float32)
        for i, (a, b) in enumerate(frame_windows(n_frames, n=n, sr=c.audio.sr, hop=c.mel.hop, window_s=c.audio.window_s)):
            out[a:b] = taught_targets(out[a:b], p[i], weight=c.nb.teacher_weight)
        return out


def file_frames(path: str, out: str, sr: int, mel_cfg, fronts: tuple[str, ...], with_activity: bool) -> tuple[int, str]:
    """Decode one file, write its front-end frames (float16) and frame activity -> ``out`` (.npz).
    Returns (n_frames, "") or (0, why it was skipped)."""
    from vocalprint.core import artifacts as A
    from vocalprint.audio.decode import AudioError, load_audio

    o = Path(out)
    if o.is_file():  # finished before an interruption (written atomically)
        try:
            with np.load(o) as z:
                return int(z[fronts[0]].shape[0]), ""
        except (OSError, ValueError, EOFError, KeyError):
            log.warning("nb: unreadable cached %s; recomputing", o)
    try:
        x = load_audio(path, sr=sr)
        fe = front_ends(x, sr=sr, cfg=mel_cfg, which=fronts)
        arrs = {f: fe[f].astype(np.float16) for f in fronts}
        if not all(np.isfinite(a).all() for a in arrs.values()):
            raise AudioError(f"{path}: frames are not finite")
        t = len(next(iter(arrs.values())))
        if with_activity:
            arrs["active"] = frame_activity(x, t, sr=sr, hop=mel_cfg.hop)
    except AudioError as e:
        return 0, str(e)
    except Exception as e:  # noqa: BLE001 - one odd file must not stop the stage; it is reported
        return 0, f"{path}: {type(e).__name__}: {e}"
    with A.atomic_path(o) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrs)
    return t, ""


def _mixing_clips(cfg: "Config", ds: "Dataset", ok: np.ndarray) -> np.ndarray:
    """Row indices of the training clips used for mixing: at most ``max_clips_per_species`` per
    primary label, chosen at random (seeded) among the decodable ones."""
    rng = np.random.default_rng(cfg.nb.seed)
    rows = []
    prim = ds.train["primary"].to_numpy()
    for sp in sorted(set(prim)):
        idx = np.flatnonzero((prim == sp) & ok)
        if len(idx) > cfg.nb.max_clips_per_species:
            idx = np.sort(rng.choice(idx, cfg.nb.max_clips_per_species, replace=False))
        rows += list(idx)
    return np.array(sorted(rows), np.int64)


def _make_mixes(cfg: "Config", ds: "Dataset", work: Path, labels: np.ndarray, clip_rows: np.ndarray,
                soundscapes: list[Path], fronts: tuple[str, ...], teacher: "_Teacher | None" = None) -> list[Path]:
    """Synthetic mixes in batches -> ``work/mixes/batch_<i>.npz`` (front-end frames float16
    [b, t, n_mels] and frame targets float16 [b, t, S], blended with the teacher's window
    probabilities when ``teacher`` is given); audio of one batch at a time."""
    from vocalprint.core import artifacts as A
    from vocalprint.audio import mix
    from vocalprint.audio.decode import AudioError, load_audio
    from vocalprint.core.parallel import progress_bar

    nb, sr = cfg.nb, cfg.audio.sr
    n_batches = int(np.ceil(nb.n_mixes / max(1, nb.mix_batch))) if nb.n_mixes > 0 else 0
    files = [work / "mixes" / f"batch_{i:05d}.npz" for i in range(n_batches)]
    if all(f.is_file() for f in files):
        return files
    max_s = nb.max_clip_s if nb.max_clip_s > 0 else None
    prim = ds.train["primary"].to_numpy()
    loaded: dict[int, np.ndarray] = {}

    def batch_clips(i: int) -> list[int]:
        """Rows mixed in batch ``i``, loaded (at most ``clips_per_batch`` clips held at once)."""
        nonlocal loaded
        rows = mix.pick_clips(clip_rows, prim, nb.clips_per_batch, np.random.default_rng((nb.seed, i)))
        keep = {}
        for r in rows:
            if r in loaded:
                keep[r] = loaded[r]
                continue
            try:
                keep[r] = load_audio(ds.train["path"].iloc[r], sr=sr, max_s=max_s)
            except AudioError as e:
                log.warning("nb: mixing clip skipped: %s", e)
        loaded = keep
        return [r for r in rows if r in keep]

    bgs: list[np.ndarray] = []
    for p in soundscapes:
        try:
            bgs += mix.quiet_segments(load_audio(p, sr=sr), sr, seg_s=cfg.audio.window_s, hop_s=2.5, keep=0.5)
        except AudioError as e:
            log.warning("nb: background skipped: %s", e)
    if not bgs:
        log.warning("nb: no train soundscape backgrounds; mixing over coloured noise only")
    bar = progress_bar(nb.n_mixes, desc="nb mixes", enabled=cfg.run.progress)
    for i, f in enumerate(files):
        n = min(nb.mix_batch, nb.n_mixes - i * nb.mix_batch)
        if f.is_file():
            bar.update(n)
            continue
        rows = batch_clips(i)
        if not rows:
            log.warning("nb: no mixing clip could be decoded; no mixes")
            return []
        clips, lab = [loaded[r] for r in rows], labels[rows]
        audio, _, events, _ = mix.mix_windows(clips, lab, bgs, n=n, sr=sr, seed=nb.seed * 1_000_003 + i,
                                              window_s=cfg.audio.window_s, return_events=True)
        ft = mix.frame_targets(events, clips, lab, n=n, sr=sr, window_s=cfg.audio.window_s, hop=cfg.mel.hop)
        if teacher is not None:
            for j, a in enumerate(audio):
                ft[j] = taught_targets(ft[j], teacher.window_prob(a), weight=nb.teacher_weight)
        fe = [front_ends(a, sr=sr, cfg=cfg.mel, which=fronts) for a in audio]
        del audio
        arrs = {fr: np.stack([e[fr] for e in fe]).astype(np.float16) for fr in fronts}
        t = arrs[fronts[0]].shape[1]
        arrs["targets"] = ft[:, :t].astype(np.float16)
        with A.atomic_path(f) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrs)
        bar.update(n)
    bar.close()
    return files


def _items(clip_files, ss_files, mix_files):
    """Every training-side item as (kind, file, row-in-file or -1)."""
    out = [("clip", f, -1) for f in clip_files] + [("ss", f, -1) for f in ss_files]
    for f in mix_files:
        with np.load(f) as z:
            n = len(z["targets"])
        out += [("mix", f, j) for j in range(n)]
    return out


def _iter_frames(items, fronts):
    """Yield (kind, {frontend: frames [t, n_mels] float16}, targets-or-active) per item, reading each
    mix batch file once."""
    cur, z = None, None
    for kind, f, j in items:
        if kind == "mix":
            if cur != f:
                with np.load(f) as zz:
                    z = {k: zz[k] for k in (*fronts, "targets")}
                cur = f
            yield kind, {fr: z[fr][j] for fr in fronts}, z["targets"][j]
        else:
            with np.load(f) as zz:
                yield kind, {fr: zz[fr] for fr in fronts}, (zz["active"] if kind == "clip" else None)


def run(cfg: "Config", ds: "Dataset", root: Path, teacher_dir: Path | None = None) -> Path:
    """Build codebooks and NB tables of every view -> ``<root>/nb/<key>/`` (cached).

    ``teacher_dir``: the teacher cache (:func:`vocalprint.teacher.stage.run`), needed when
    ``nb.teacher_weight > 0``; the teacher then also labels every mix as it is made."""
    from vocalprint.core import artifacts as A
    from vocalprint.audio import mel as M
    from vocalprint.data.dataset import DatasetError
    from vocalprint.core.parallel import map_files, progress_bar
    from vocalprint.tokens.codebook import fit_codebook

    taught = uses_teacher(cfg)
    if taught and teacher_dir is None:
        from vocalprint.config import ConfigError

        raise ConfigError("nb.teacher_weight > 0 needs the teacher cache (the model registry's train builds it)")
    final = A.stage_dir(root, "nb", key(cfg, ds, Path(teacher_dir).name if taught else ""))
    if A.is_complete(final):
        log.info("nb: cached at %s", final)
        return final
    work = A.partial_dir(final)
    teacher = _Teacher(cfg, ds, root, Path(teacher_dir)) if taught else None
    nb, sr = cfg.nb, cfg.audio.sr
    vs = views(nb, cfg.mel.n_mels)
    fronts = view_front_ends(vs)
    timer = A.Timer("nb")
    labels = ds.label_matrix()
    n_sp = labels.shape[1]

    # 1. front-end frames of every focal clip and of up to max_soundscapes train soundscapes
    rng = np.random.default_rng(nb.seed)
    ss = list(ds.train_soundscapes)
    if len(ss) > nb.max_soundscapes:
        ss = [ss[i] for i in np.sort(rng.choice(len(ss), nb.max_soundscapes, replace=False))]
    clip_out = [work / "frames" / M.npy_name(f"train_audio/{f}").replace(".npy", ".npz") for f in ds.train["filename"]]
    ss_out = [work / "frames" / M.npy_name(f"train_soundscapes/{p.name}").replace(".npy", ".npz") for p in ss]
    tasks = [(str(p), str(o), sr, cfg.mel, fronts, True) for p, o in zip(ds.train["path"], clip_out)]
    tasks += [(str(p), str(o), sr, cfg.mel, fronts, False) for p, o in zip(ss, ss_out)]
    with timer("frames"):
        res = map_files(file_frames, tasks, n_jobs=cfg.run.n_jobs, desc="nb frames", progress=cfg.run.progress)
    skipped = [(t[0], r[1]) for t, r in zip(tasks, res) if r[1]]
    for name, why in skipped:
        log.warning("nb: skipped %s", why)
    nc = len(clip_out)
    clip_ok = np.array([not r[1] and r[0] > 0 for r in res[:nc]], bool)
    if not clip_ok.any():
        raise DatasetError(f"{ds.root / 'train_audio'}: none of the {nc} training files could be decoded")
    ss_files = [o for o, r in zip(ss_out, res[nc:]) if not r[1]]
    clip_rows = np.flatnonzero(clip_ok)

    # 2. synthetic mixes
    with timer("mixes"):
        ss_ok = [Path(t[0]) for t, r in zip(tasks[nc:], res[nc:]) if not r[1]]
        mix_files = _make_mixes(cfg, ds, work, labels, _mixing_clips(cfg, ds, clip_ok), ss_ok, fronts, teacher)
    items = _items([clip_out[i] for i in clip_rows], ss_files, mix_files)
    item_labels = {str(clip_out[i]): labels[i] for i in clip_rows}
    ss_names = {str(o): f"train_soundscapes/{p.name}" for o, p in zip(ss_out, ss)}
    n_frames = np.array([res[i][0] for i in clip_rows] + [r[0] for o, r in zip(ss_out, res[nc:]) if not r[1]]
                        + [0] * (len(items) - len(clip_rows) - len(ss_files)), np.int64)
    if len(mix_files):
        with np.load(mix_files[0]) as z:
            n_frames[len(clip_rows) + len(ss_files):] = z["targets"].shape[1]
    total = int(n_frames.sum())

    # 3. K-means codebook per view on one uniform frame sample of all items
    books = {}
    for v in vs:
        tcfg = tokens_cfg(v, nb)
        with timer("sample"):
            r = np.random.default_rng(v.seed)
            pick = np.sort(r.choice(total, min(nb.sample_frames, total), replace=False))
            starts = np.concatenate([[0], np.cumsum(n_frames)])
            parts = []
            for it, (kind, fr, _) in enumerate(_iter_frames(items, (v.frontend,))):
                a, b = np.searchsorted(pick, [starts[it], starts[it + 1]])
                if b > a:
                    parts.append(features(fr[v.frontend], v, tcfg)[pick[a:b] - starts[it]])
            sample = np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)
        log.info("nb: K-means %s K=%d on %d frames x %d dims", v.name, v.k, *sample.shape)
        with timer("fit"):
            books[v.name] = fit_codebook(sample, cfg=tcfg)
        del sample, parts
        A.save_npy(work / f"codebook_{v.name}.npy", books[v.name].centroids)

    # 4. token counts: active frames of the clips, frame targets of the mixes
    from vocalprint.tokens.codebook import Nearest

    nearest = {v.name: Nearest(books[v.name].centroids) for v in vs}
    pos = {v.name: np.zeros((v.k, n_sp)) for v in vs}
    tot = {v.name: np.zeros(v.k) for v in vs}
    mix_tok = {v.name: [] for v in vs}
    n_taught_ss = 0
    bar = progress_bar(len(items), desc="nb counts", enabled=cfg.run.progress)
    with timer("count"):
        for (kind, f, _), (_, fr, extra) in zip(items, _iter_frames(items, fronts)):
            if kind == "ss":  # unlabelled: counted only with the teacher's probabilities as targets
                y = teacher.soundscape_targets(ss_names[str(f)], len(fr[fronts[0]])) if teacher else None
                if y is None:
                    bar.update()
                    continue
                n_taught_ss += 1
            elif kind == "clip":
                y = clip_targets(extra, item_labels[str(f)])
            else:
                y = np.asarray(extra, np.float32)
            for v, tok in zip(vs, view_tokens(fr, vs, nb, nearest)):
                add_counts(pos[v.name], tot[v.name], tok, y)
                if kind == "mix":
                    mix_tok[v.name].append(tok)
            bar.update()
    bar.close()
    tables = {}
    for v in vs:
        tables[v.name] = nb_table(pos[v.name], tot[v.name], alpha=nb.alpha)
        A.save_npy(work / f"table_{v.name}.npy", tables[v.name])

    # 5. calibration: standardise window scores of the mixes (one mean and scale for all species)
    with timer("calibrate"):
        sc = []
        for j in range(len(mix_tok[vs[0].name])):
            fs = sum(v.weight * tables[v.name][mix_tok[v.name][j].astype(np.int64)] for v in vs)
            sc.append(window_scores(fs, np.array([[0, len(fs)]]), top_k=nb.top_k, width=nb.smooth_frames))
        sc = np.concatenate(sc) if sc else np.zeros((1, n_sp), np.float32)
        calib = {"mean": float(sc.mean()), "scale": float(max(sc.std(), 1e-3))}
    A.write_json(work / "calib.json", calib)
    shutil.rmtree(work / "frames", ignore_errors=True)
    shutil.rmtree(work / "mixes", ignore_errors=True)
    return A.finish(work, final, {
        "stage": "nb", "config": {"audio": cfg.audio, "mel": cfg.mel, "nb": nb},
        "data": str(ds.root), "data_fingerprint": ds.fingerprint(), "species": list(ds.species),
        "views": [v.__dict__ for v in vs], "n_clips": int(clip_ok.sum()), "n_mixing_clips": int(len(_mixing_clips(cfg, ds, clip_ok))),
        "n_soundscapes": len(ss_files), "n_mixes": len(mix_tok[vs[0].name]),
        "teacher": ({"cache": Path(teacher_dir).name, "model": teacher.model_dir.name,
                     "n_matched": int((teacher.cols >= 0).sum()), "n_soundscapes_counted": n_taught_ss}
                    if teacher else None),
        "frames_counted": {v.name: int(tot[v.name].sum()) for v in vs}, "n_skipped": len(skipped),
        "skipped": [w for _, w in skipped][:200], "calib": calib, "seconds": timer.seconds})
