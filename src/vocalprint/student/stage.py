"""Stage 6b: distil the teacher into a small Mel-spectrogram CNN and export it to TFLite.

Training windows: every training window of the focal clips (labels, metadata, teacher outputs)
plus 5-s windows of the unlabelled train soundscapes (teacher outputs only; at most
``distill.max_soundscape_windows`` of them), at most ``distill.max_windows`` in all, stored as one
memory-mapped float16 array so memory stays bounded.
"""
from __future__ import annotations

import logging
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import pandas as pd

from vocalprint.core import artifacts as A
from vocalprint.audio import mel as M
from vocalprint.teacher import stage as teach
from vocalprint.audio.decode import AudioError, frame_windows, load_audio
from vocalprint.config import Config, ConfigError, fingerprint, frames_per_window
from vocalprint.data.dataset import Dataset
from vocalprint.core.parallel import progress_bar
from vocalprint.teacher.stage import runner

log = logging.getLogger(__name__)


def metadata(ds: Dataset) -> np.ndarray:
    """Auxiliary targets per training file [n_files, 4]: location on the unit sphere (x, y, z) from
    latitude/longitude and rating/5; NaN where ``train.csv`` lacks them."""
    tr = ds.train
    out = np.full((len(tr), 4), np.nan, np.float32)
    if {"latitude", "longitude"} <= set(tr.columns):
        lat = np.radians(pd.to_numeric(tr["latitude"], errors="coerce").to_numpy(float))
        lon = np.radians(pd.to_numeric(tr["longitude"], errors="coerce").to_numpy(float))
        out[:, 0], out[:, 1], out[:, 2] = np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)
    if "rating" in tr.columns:
        r = pd.to_numeric(tr["rating"], errors="coerce").to_numpy(float)
        out[:, 3] = np.where(r > 0, r / 5.0, np.nan)  # 0 means "unknown" in BirdCLEF's train.csv
    return out


MIX_BATCH = 200  # mixes per task: bounds the audio held by a worker, and the unit of resumption


def _background_segments(paths: tuple[str, ...], sr: int) -> list[np.ndarray]:
    """Quiet 5-s stretches of the background soundscapes (read once per worker process)."""
    from vocalprint.audio import mix

    out: list[np.ndarray] = []
    for p in paths:
        try:
            out += mix.quiet_segments(load_audio(p, sr=sr), sr, seg_s=5, hop_s=2.5)
        except AudioError as e:
            log.warning("student mixes: skipped %s", e)
    return out


def _mix_batch(out: str, s: int, m: int, cfg: Config, paths: list[str], labels: np.ndarray, primary: np.ndarray,
               soundscapes: tuple[str, ...], model_dir: str, cols: np.ndarray) -> int:
    """Batch ``s`` of ``m`` teacher-labelled mixes (seed ``distill.seed + s``) -> ``out`` (.npz with
    ``mel`` [m, fpw, n_mels] float16, teacher ``emb`` [m, D], ``logits`` of the competition species
    [m, S] (NaN where unknown), carried ``labels`` [m, S]). Holds at most ``mix_clips_per_batch``
    clips, drawn from the pool ``paths``. Returns m (0 when ``out`` was already written)."""
    from vocalprint.audio import mix
    from vocalprint.audio.mel import logmel
    from vocalprint.core.parallel import process_cached
    from vocalprint.student.predictor import student_windows

    o = Path(out)
    if o.is_file():  # written (atomically) before an interruption
        return 0
    d, sr = cfg.distill, cfg.audio.sr
    clips, labs = [], []
    for r in mix.pick_clips(np.arange(len(paths)), primary, d.mix_clips_per_batch, np.random.default_rng((d.seed, s))):
        try:
            clips.append(load_audio(paths[r], sr=sr, max_s=30))
            labs.append(labels[r])
        except AudioError as e:
            log.warning("student mixes: skipped %s", e)
    if not clips:
        raise AudioError(f"{Path(paths[0]).parent.parent}: no clip for the student's mixes could be decoded")
    bgs = process_cached(("student-bgs", soundscapes, sr), lambda: _background_segments(soundscapes, sr))
    net = process_cached(("teacher", model_dir, cfg.teacher), lambda: runner(Path(model_dir), cfg))
    audio, y = mix.mix_windows(clips, np.asarray(labs), bgs, n=m, sr=sr, seed=d.seed + s)
    fpw = frames_per_window(cfg)
    X = np.zeros((m, fpw, cfg.mel.n_mels), np.float16)
    E, T = [], []
    for j, a in enumerate(audio):
        X[j] = student_windows(logmel(a, sr=sr, cfg=cfg.mel), n=1, fpw=fpw, cfg=cfg)[0]
        _, lo, em = teach.chunk_outputs(net, a, cfg=cfg)
        E.append(em.astype(np.float32).mean(axis=0))
        T.append(teach.select_species(lo, cols).max(axis=0))
    with A.atomic_path(o) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, mel=X, emb=np.stack(E), logits=np.stack(T), labels=np.asarray(y, np.float32))
    return m


def mixes_key(cfg: Config, cache_key: str) -> str:
    d = cfg.distill
    return fingerprint("tmixes", cfg.audio, cfg.mel, d.n_mixes, d.seed, d.mix_clips_per_species,
                       d.mix_clips_per_batch, d.mix_soundscapes, cache_key)


def mixes(cfg: Config, ds: Dataset, cache_dir: Path, root: Path) -> Path | None:
    """``distill.n_mixes`` teacher-labelled synthetic field windows -> ``<root>/tmixes/<key>/``
    (``mel.npy`` memory-mappable, ``emb.npy``, ``logits.npy``, ``labels.npy``): focal clips over
    quiet stretches of the train soundscapes (or coloured noise) at -10..+15 dB
    (:mod:`vocalprint.audio.mix`). A stage of its own, so retraining the student never reruns the
    teacher; batches run in parallel (one teacher per worker) and resume after a kill.
    None when ``n_mixes`` is 0."""
    from numpy.lib.format import open_memmap

    from vocalprint.core.parallel import map_files

    d = cfg.distill
    if d.n_mixes <= 0:
        return None
    final = A.stage_dir(root, "tmixes", mixes_key(cfg, cache_dir.name))
    if A.is_complete(final):
        log.info("tmixes: cached at %s", final)
        return final
    work = A.partial_dir(final)
    timer = A.Timer("tmixes")
    model_dir = teach.prepare(cfg, root)
    cols = np.array(A.manifest(cache_dir)["columns"])
    rng = np.random.default_rng(d.seed)
    tr = ds.train
    prim = tr["primary"].to_numpy()
    pool = np.sort(np.concatenate([rng.permutation(np.flatnonzero(prim == s))[: d.mix_clips_per_species]
                                   for s in tr["primary"].unique()]))
    ss = list(ds.train_soundscapes)
    if len(ss) > d.mix_soundscapes:  # backgrounds: a seeded sample bounds the audio held
        ss = [ss[i] for i in np.sort(rng.choice(len(ss), d.mix_soundscapes, replace=False))]
    paths = [str(p) for p in tr["path"].to_numpy()[pool]]
    labels = ds.label_matrix()[pool]
    tasks = [(str(work / "batches" / f"b_{s:08d}.npz"), s, min(MIX_BATCH, d.n_mixes - s), cfg, paths, labels,
              prim[pool], tuple(str(p) for p in ss), str(model_dir), cols) for s in range(0, d.n_mixes, MIX_BATCH)]
    with timer("mixes"):
        map_files(_mix_batch, tasks, n_jobs=cfg.run.n_jobs, desc="student mixes", progress=cfg.run.progress)
    fpw = frames_per_window(cfg)
    with timer("assemble"):
        X = open_memmap(work / "mel.npy", mode="w+", dtype=np.float16, shape=(d.n_mixes, fpw, cfg.mel.n_mels))
        E, T, Y = [], [], []
        for t in tasks:
            with np.load(t[0]) as z:
                X[t[1]:t[1] + t[2]] = z["mel"]
                E.append(z["emb"])
                T.append(z["logits"])
                Y.append(z["labels"])
        X.flush()
        del X
        A.save_npy(work / "emb.npy", np.concatenate(E).astype(np.float32))
        A.save_npy(work / "logits.npy", np.concatenate(T).astype(np.float32))
        A.save_npy(work / "labels.npy", np.concatenate(Y).astype(np.float32))
    import shutil

    shutil.rmtree(work / "batches", ignore_errors=True)
    return A.finish(work, final, {"stage": "tmixes", "upstream": [cache_dir.name], "model": model_dir.name,
                                  "n_mixes": d.n_mixes, "n_pool_clips": len(pool), "n_soundscapes": len(ss),
                                  "seconds": timer.seconds})


# StudentConfig fields added after students were trained, with the value that means "as before"
VAL_EVERY = 10  # one recording in this many is held out for the validation history
NEUTRAL = {"window_budget": 0, "token_stages": 1, "rounds": 0, "pl_power": 1.0, "pl_teacher_weight": 0.5, "pl_hop_s": 2.5,
           "max_soundscape_windows": 0, "token_running": 0.5, "token_quant": "weights"}
# self-training fields: never in a member's own key (round 0 does not read them; a later round's key
# holds its pseudo-label stage's folder name, whose key holds them)
ROUND_FIELDS = ("rounds", "pl_power", "pl_teacher_weight", "pl_hop_s")
MEMBER_SEED = 1000  # member j of an ensemble trains with distill.seed + MEMBER_SEED * j


def key(cfg: Config, tfeat_key: str, cache_key: str, member: int = 0, round_: int = 0,
        pseudo_key: str | None = None) -> str:
    """One member's stage key. ``distill.members`` is left out (and member 0 keyed as a lone
    student), so a member's cached student serves every ensemble size that includes it; so are
    the token-front fields for a Mel student (they do not change it), and fields added later at the
    value that reproduces the model trained before them (:data:`NEUTRAL`), so cached students stay valid.
    A self-training round ``round_`` >= 1 adds ``round<r>`` and its pseudo-label stage's key
    (``pseudo_key``), which names the previous round's members."""
    skip = {"members", *ROUND_FIELDS} | ({f.name for f in fields(cfg.distill) if f.name.startswith("token") or f.name == "front"}
                                        if cfg.distill.front == "mel" else set())
    skip |= {k for k, v in NEUTRAL.items() if getattr(cfg.distill, k) == v}
    d = {f.name: getattr(cfg.distill, f.name) for f in fields(cfg.distill) if f.name not in skip}
    parts = [f"member{member}"] if member else []
    if round_:
        if not pseudo_key:
            raise ValueError(f"student round {round_}: needs the key of its pseudo labels")
        parts += [f"round{round_}", pseudo_key]
    return fingerprint("student", d, tfeat_key, cache_key, *parts)


def window_bounds(cfg: Config, n_frames: int, hop_s: float | None = None) -> np.ndarray:
    """Frame bounds [n, 2] of a file's 5-s windows: the scoring windows (``hop_s`` None), or windows
    starting every ``hop_s`` seconds that end inside the file (a window starts at the frame holding
    its start time, as :func:`~vocalprint.audio.decode.frame_windows`)."""
    sec = cfg.mel.hop / cfg.audio.sr
    w = cfg.audio.window_s
    if hop_s is None:
        n = int(n_frames * sec // w)
        return frame_windows(int(n_frames), n=n, sr=cfg.audio.sr, hop=cfg.mel.hop, window_s=w)
    dur = n_frames * sec
    n = int(np.floor(np.round((dur - w) / hop_s, 6))) + 1 if dur >= w else 0
    t = np.arange(n) * hop_s
    edges = np.ceil(np.round(np.stack([t, t + w], 1) * (cfg.audio.sr / cfg.mel.hop), 6)).astype(np.int64)
    return np.minimum(edges, n_frames)


def soundscape_windows(cfg: Config, mel_dir: Path, cache_dir: Path, hop_s: float | None = None) -> pd.DataFrame:
    """Windows (name, start, stop in Mel frames) of the train soundscapes with teacher outputs and
    at least one window of frames (:func:`window_bounds`)."""
    idx = M.load_index(mel_dir)
    out = []
    for r in idx[idx["split"] == "train_soundscapes"].itertuples():
        if not _chunks(cache_dir, r.name).is_file() or r.n_frames < frames_per_window(cfg):
            continue
        b = window_bounds(cfg, int(r.n_frames), hop_s)
        out.append(pd.DataFrame({"name": r.name, "start": b[:, 0], "stop": b[:, 1]}))
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame({"name": [], "start": [], "stop": []})


def _chunks(cache_dir: Path, name: str) -> Path:
    return cache_dir / "chunks" / (M.npy_name(name)[:-4] + ".npz")


def pool_teacher(cfg: Config, cache_dir: Path, win: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Teacher (logits [n, S], embeddings [n, D]) of windows ``win`` (name, start, stop frames),
    the cached chunks pooled over each window's bounds (:func:`vocalprint.teacher.stage.pool`)."""
    sec = cfg.mel.hop / cfg.audio.sr
    los, ems = [], []
    for name, grp in win.groupby("name", sort=False):  # rows of one file are contiguous
        z = np.load(_chunks(cache_dir, name))
        lo, em = teach.pool(z["starts"], z["logits"], z["emb"], grp[["start", "stop"]].to_numpy() * sec,
                            chunk_s=teach.CHUNK_S[cfg.teacher.model])
        los.append(lo)
        ems.append(em)
    return np.concatenate(los), np.concatenate(ems)


def sample_rows(rng: np.random.Generator, n: int, soundscape_rows: range, d) -> np.ndarray:
    """Indices of the ``n`` rows a student trains on, at most ``d.max_windows`` (``d``: the
    ``distill`` config): a uniform sample; or, with ``d.max_soundscape_windows`` set and more rows
    than fit, at most that many of the soundscape rows (already a sample of whole files, see
    :func:`vocalprint.teacher.stage.soundscape_sample`) and a uniform sample of the others for the
    rest, so a soundscape window is not thinned twice."""
    if n <= d.max_windows or d.max_soundscape_windows <= 0 or not len(soundscape_rows):
        return rng.permutation(n)[: d.max_windows]
    ss = np.asarray(soundscape_rows)
    ss = rng.permutation(ss)[: min(d.max_soundscape_windows, d.max_windows)]
    rest = np.setdiff1d(np.arange(n), np.asarray(soundscape_rows), assume_unique=True)
    rest = rng.permutation(rest)[: d.max_windows - len(ss)]
    return rng.permutation(np.concatenate([ss, rest]))


def _soundscape_rows(cfg: Config, mel_dir: Path, cache_dir: Path, pseudo_dir: Path | None, n_species: int
                     ) -> tuple[list, np.ndarray, np.ndarray, np.ndarray]:
    """(rows (name, start, start + fpw), teacher emb, teacher logits, labels) of the train soundscapes'
    windows: tiled, labels NaN; or the pseudo-labelled windows with their soft labels."""
    if pseudo_dir is None:
        win = soundscape_windows(cfg, mel_dir, cache_dir)
        Y = np.full((len(win), n_species), np.nan, np.float32)
    else:
        win = pd.read_csv(A.verified(pseudo_dir / "rows.csv"), keep_default_na=False)
        Y = np.load(A.verified(pseudo_dir / "labels.npy"))
        if Y.shape != (len(win), n_species):
            raise ValueError(f"{pseudo_dir}: labels {Y.shape}, expected ({len(win)}, {n_species})")
    if not len(win):
        return [], np.zeros((0, 0), np.float32), np.zeros((0, n_species), np.float32), Y
    T, E = pool_teacher(cfg, cache_dir, win)
    fpw = frames_per_window(cfg)
    return [(n, int(a), int(a) + fpw) for n, a in zip(win["name"], win["start"])], E, T, Y


def run_all(cfg: Config, ds: Dataset, mel_dir: Path, cache_dir: Path, tfeat_dir: Path, root: Path,
            pseudo_dir: Path | None = None, round_: int = 0) -> list[Path]:
    """Every member of the student ensemble (``distill.members``), each trained unless cached."""
    if cfg.distill.members < 1:
        raise ConfigError(f"distill.members={cfg.distill.members}: need at least one student")
    return [run(cfg, ds, mel_dir, cache_dir, tfeat_dir, root, member=j, pseudo_dir=pseudo_dir, round_=round_)
            for j in range(cfg.distill.members)]


def run(cfg: Config, ds: Dataset, mel_dir: Path, cache_dir: Path, tfeat_dir: Path, root: Path,
        member: int = 0, pseudo_dir: Path | None = None, round_: int = 0) -> Path:
    """Train one student -> ``student_fp32.tflite``, ``student_int8.tflite``, ``history.json``, and
    for the students :func:`~vocalprint.student.fcn.has_fcn` names (Mel, and token students centred
    on a mean) their whole-file int8 form (:mod:`vocalprint.student.fcn`, layout in the manifest).

    ``member`` j > 0 trains on the same windows (and validation split) as member 0, from other
    initial weights, batch order and augmentations (training seed ``distill.seed + 1000 j``).
    A token student (``distill.front="tokens"``) fits its codebooks on its training windows.
    With ``pseudo_dir`` (self-training round ``round_`` >= 1, :mod:`vocalprint.student.rounds`) the
    soundscape windows are its pseudo-labelled ones, their soft labels in the label loss."""
    from vocalprint.student.export import export_tflite, int8_quant
    from vocalprint.student.net import count_params, inference_params
    from vocalprint.student.train import train_student

    if cfg.distill.front not in ("mel", "tokens"):
        raise ConfigError(f"distill.front={cfg.distill.front!r}: use 'mel' or 'tokens'")
    if (pseudo_dir is None) != (round_ == 0):
        raise ValueError(f"student round {round_}: pseudo labels are {'missing' if pseudo_dir is None else 'given'}")
    final = A.stage_dir(root, "student", key(cfg, tfeat_dir.name, cache_dir.name, member, round_,
                                             pseudo_dir.name if pseudo_dir is not None else None))
    if A.is_complete(final):
        log.info("student: cached at %s", final)
        return final
    work = A.partial_dir(final)
    timer = A.Timer("student")
    fpw = frames_per_window(cfg)
    win = pd.read_csv(tfeat_dir / "windows.csv")
    T = np.load(A.verified(tfeat_dir / "T.npy"))
    E = np.load(A.verified(tfeat_dir / f"X_{cfg.teacher.model}.npy"))
    Y = np.load(A.verified(tfeat_dir / "Y.npy"))
    G = np.load(A.verified(tfeat_dir / "groups.npy"))
    meta_file = metadata(ds)
    meta = meta_file[G]
    rows = [(r.name, int(r.start), int(r.stop)) for r in win.itertuples()]
    # soundscape windows: teacher targets, and no labels (or a self-training round's pseudo labels)
    s_rows, s_emb, s_log, s_y = _soundscape_rows(cfg, mel_dir, cache_dir, pseudo_dir, Y.shape[1])
    if s_rows:
        E, T, Y = np.concatenate([E, s_emb]), np.concatenate([T, s_log]), np.concatenate([Y, s_y])
        meta = np.concatenate([meta, np.full((len(s_rows), meta.shape[1]), np.nan, np.float32)])
        rows += s_rows
    n_real = len(rows)
    Xmix = None
    tm = mixes(cfg, ds, cache_dir, root)
    if tm is not None:
        Xmix = np.load(A.verified(tm / "mel.npy"), mmap_mode="r")
        e, t, y = (np.load(A.verified(tm / f"{n}.npy")) for n in ("emb", "logits", "labels"))
        E, T, Y = np.concatenate([E, e]), np.concatenate([T, t]), np.concatenate([Y, y])
        meta = np.concatenate([meta, np.full((len(y), meta.shape[1]), np.nan, np.float32)])
        rows += [("__mix__", i, i) for i in range(len(y))]
    rng = np.random.default_rng(cfg.distill.seed)
    # a self-training round's pseudo-labelled windows cover every soundscape: sampled with the rest
    own_ss = range(n_real - len(s_rows), n_real) if pseudo_dir is None else range(0)
    keep = sample_rows(rng, len(rows), own_ss, cfg.distill)
    # a validation split by recording (for the history only), placed last so both parts are views
    names = np.unique([rows[k][0] for k in keep if rows[k][0] != "__mix__"])
    val_names = set(rng.choice(names, max(1, len(names) // VAL_EVERY), replace=False)) if len(names) > 5 else set()
    is_val = np.array([rows[k][0] in val_names for k in keep], bool)
    keep = np.concatenate([np.sort(keep[~is_val]), np.sort(keep[is_val])])
    n_tr = int((~is_val).sum())
    from numpy.lib.format import open_memmap

    mels_path = work / "windows_mel.npy"
    X = open_memmap(mels_path, mode="w+", dtype=np.float16, shape=(len(keep), fpw, cfg.mel.n_mels))
    with timer("windows"):
        bar = progress_bar(len(keep), desc="student windows", enabled=cfg.run.progress)
        for i, k in enumerate(keep):
            name, a, b = rows[k]
            if name == "__mix__":
                X[i] = Xmix[a]
                bar.update()
                continue
            fr = M.load_frames(mel_dir, name)[a:a + fpw]
            X[i] = M.silence(cfg.mel)
            X[i, :len(fr)] = fr
            bar.update()
        bar.close()
        X.flush()
    E, T, Y, meta = E[keep], T[keep], Y[keep], meta[keep]
    use_meta = cfg.distill.metadata and bool(np.isfinite(meta).any())
    m = meta if use_meta else None
    tr, va = slice(0, n_tr), slice(n_tr, len(keep))
    val = None
    if n_tr < len(keep):
        val = (X[va], E[va], T[va], Y[va]) + ((m[va],) if use_meta else ())
    with timer("train"):
        tcfg = replace(cfg.distill, seed=cfg.distill.seed + MEMBER_SEED * member)
        model, hist = train_student(X[tr], teacher_emb=E[tr], teacher_logits=T[tr], labels=Y[tr],
                                    meta=m[tr] if use_meta else None, val=val, cfg=tcfg,
                                    progress=cfg.run.progress)
    quant = int8_quant(cfg.distill)
    with timer("export"):
        rep = np.asarray(X[rng.choice(len(X), min(256, len(X)), replace=False)], np.float32)
        export_tflite(model, work / "student_fp32.tflite", quant="none")
        export_tflite(model, work / "student_int8.tflite", quant=quant, representative=rep)
        fcn = None
        from vocalprint.student.fcn import FCN_FILE, export_fcn, has_fcn

        if has_fcn(cfg.distill):  # the whole-file form (submit.student_fcn)
            fcn = export_fcn(model, work / FCN_FILE, cfg, tcfg, X, silence=M.silence(cfg.mel), rng=rng).to_dict()
    del X
    mels_path.unlink()  # the training windows can be rebuilt from the mel cache; keep the folder small
    A.write_json(work / "history.json", hist)
    return A.finish(work, final, {"stage": "student", "config": cfg.distill, "member": member,
                                  "round": round_, "pseudo": pseudo_dir.name if pseudo_dir is not None else None,
                                  "n_pseudo": len(s_rows) if pseudo_dir is not None else 0,
                                  "upstream": [tfeat_dir.name, cache_dir.name] + ([tm.name] if tm else [])
                                  + ([pseudo_dir.name] if pseudo_dir is not None else []),
                                  "n_windows": int(len(keep)), "presentations": int(hist["presentations"]),
                                  "int8_file": quant, "fcn": fcn,
                                  "n_labelled": int(np.isfinite(Y).all(axis=1).sum()), "metadata": bool(use_meta),
                                  "n_real_windows": n_real, "n_mixes": int(cfg.distill.n_mixes),
                                  "params": count_params(model), "inference_params": inference_params(model),
                                  "species": A.manifest(tfeat_dir)["species"], "seconds": timer.seconds})
