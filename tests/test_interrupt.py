"""Interrupted runs: SIGKILL stages and ``submit`` at random moments, then resume.

Every kill hits the whole process group (the CLI and its joblib workers). After each kill: every
finished stage folder is complete and matches its checksums, the submission is absent, the old one,
or complete and valid. Resuming reuses finished per-file Mel frames and ends with byte-identical
artifacts and submission to an uninterrupted run. ``VP_KILL_SEED`` replays a sequence of kill times;
``VP_INTERRUPT_DATA=DIR`` runs the suite on another set:

    VP_INTERRUPT_DATA=data/scale-0.02 .venv/bin/python -m pytest -m slow tests/test_interrupt.py -s
"""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import REPO, run_env
from vocalprint.core import artifacts as A
from vocalprint.serving.submission import validate

FAST = ("tokens.k=32", "w2v.epochs=1", "w2v.dim=16", "w2v.workers=1", "train.folds=3", "run.progress=false",
        "submit.model=stsg-linear")  # the staged token pipeline: its stages are what these tests kill and damage
SEED = int(os.environ.get("VP_KILL_SEED", time.time_ns() % 100_000))
STAGES = ("mels", "tokens", "w2v", "features", "train")


def command(stage: str, data: Path, art: Path, *extra: str) -> list[str]:
    cmd = [sys.executable, "-m", "vocalprint", stage, "--data", str(data), "--artifacts", str(art), *extra]
    for s in FAST:
        cmd += ["--set", s]
    return cmd


class Runner:
    """Starts CLI runs in their own process group; kills the group; counts kills and resumes."""

    def __init__(self, data: Path, art: Path, logs: Path):
        self.data, self.art, self.logs = data, art, logs
        self.kills: list[str] = []
        self.resumes = 0
        self.n = 0
        logs.mkdir(parents=True, exist_ok=True)

    def start(self, stage: str, *extra: str) -> subprocess.Popen:
        self.n += 1
        log = open(self.logs / f"{self.n:02d}_{stage}.log", "w")
        p = subprocess.Popen(command(stage, self.data, self.art, *extra), env=run_env(), cwd=REPO,
                             stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        p.log = log  # type: ignore[attr-defined]
        p.stage = stage  # type: ignore[attr-defined]
        return p

    def run(self, stage: str, *extra: str, timeout: float = 1800) -> None:
        p = self.start(stage, *extra)
        rc = p.wait(timeout=timeout)
        p.log.close()
        text = Path(p.log.name).read_text()
        assert rc == 0, f"{stage} (seed {SEED}) exited {rc}:\n{text[-4000:]}"
        assert "Traceback" not in text, text[-4000:]
        self.resumes += 1

    def kill(self, p: subprocess.Popen, what: str) -> bool:
        """SIGKILL the group of ``p``; False if it had already finished."""
        alive = p.poll() is None
        try:
            os.killpg(p.pid, signal.SIGKILL)  # also any orphaned worker still in the group
        except ProcessLookupError:
            pass
        p.wait(timeout=30)
        p.log.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # the workers die with the group
            try:
                os.killpg(p.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        else:
            pytest.fail(f"processes of group {p.pid} survived SIGKILL")
        if alive:
            self.kills.append(what)
        return alive


def wait_until(cond, p: subprocess.Popen, timeout: float = 300) -> bool:
    """Poll ``cond()`` until true (True) or ``p`` exits / the timeout passes (False)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if cond():
            return True
        if p.poll() is not None:
            return bool(cond())
        time.sleep(0.02)
    return False


def partial(art: Path, stage: str) -> Path | None:
    return next(iter(sorted((art / stage).glob("*.partial"))), None) if (art / stage).is_dir() else None


def frames_done(art: Path) -> dict[str, tuple[int, int]]:
    """Per-file Mel frames already in the partial folder: name -> (inode, mtime_ns)."""
    w = partial(art, "mels")
    if w is None or not (w / "frames").is_dir():
        return {}
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (w / "frames").glob("*.npy")}


def check_artifacts(art: Path, planted: Path | None = None) -> None:
    """Nothing but complete, checksum-matching stage folders outside ``*.partial`` (but ``planted``)."""
    for stage in STAGES:
        if not (art / stage).is_dir():
            continue
        for d in (art / stage).iterdir():
            if d.name.endswith(".partial") or (d == planted and not A.is_complete(d)):
                continue
            assert A.is_complete(d), f"{d}: a stage folder without a complete manifest"
            for rel in A.manifest(d)["files"]:
                A.verified(d / rel)


def check_submission(out: Path, ids: list[str], species: list[str], old: bytes | None) -> str:
    if not out.exists():
        return "absent"
    if old is not None and out.read_bytes() == old:
        return "old"
    validate(pd.read_csv(out), row_ids_expected=ids, species=species)
    t = out.with_name("timing.json")
    if t.exists():
        json.loads(t.read_text())  # written atomically: never half a JSON
    return "valid"


def stage_files(art: Path) -> dict[str, dict[str, str]]:
    """stage -> {file: sha256} of every complete folder (one key per stage here)."""
    out = {}
    for stage in STAGES:
        for d in (art / stage).iterdir():
            if A.is_complete(d):
                out[f"{stage}/{d.name}"] = A.manifest(d)["files"]
    return out


@pytest.fixture(scope="module")
def small_demo(tmp_path_factory) -> Path:
    """The small demo, or the set in ``VP_INTERRUPT_DATA`` (e.g. a ``demo-data --scale 0.02``
    competition: the same kills and checks at a size where each stage runs for minutes)."""
    from vocalprint.data.demo import make_demo

    if os.environ.get("VP_INTERRUPT_DATA"):
        return Path(os.environ["VP_INTERRUPT_DATA"])
    return make_demo(tmp_path_factory.mktemp("interrupt") / "demo", n_species=6, clips_per_species=3,
                     n_train_soundscapes=1, n_test_soundscapes=3)


@pytest.fixture(scope="module")
def reference(small_demo, tmp_path_factory):
    """An uninterrupted ``submit`` (all stages) on the small demo."""
    tmp = tmp_path_factory.mktemp("reference")
    r = Runner(small_demo, tmp / "art", tmp / "logs")
    out = tmp / "sub" / "submission.csv"
    r.run("submit", "--out", str(out))
    return tmp / "art", out


@pytest.mark.slow
def test_kill_and_resume_every_stage_gives_the_uninterrupted_result(small_demo, reference, tmp_path):
    rng = random.Random(SEED)
    ref_art, ref_out = reference
    art = tmp_path / "art"
    run = Runner(small_demo, art, tmp_path / "logs")
    sample = pd.read_csv(small_demo / "sample_submission.csv")
    ids, species = list(sample["row_id"]), list(sample.columns[1:])
    n_files = len(pd.read_csv(small_demo / "train.csv")) + len(list((small_demo / "train_soundscapes").iterdir()))

    # 1. mels, twice killed while per-file frames are being written. On a fast machine the small
    # demo's stage can finish between its second frame and the kill: then it starts over, sooner
    for attempt in range(5):
        p = run.start("mels")
        assert wait_until(lambda: len(frames_done(art)) >= 2, p), "mels wrote no frames"
        time.sleep(rng.uniform(0, 0.3 / (attempt + 1)))
        run.kill(p, "mels")
        check_artifacts(art)
        first = frames_done(art)
        if len(first) >= 2 and not any(A.is_complete(d) for d in (art / "mels").iterdir()):
            break
        shutil.rmtree(art / "mels")
    else:
        pytest.fail("mels finished before each of 5 kills; the demo is too small")
    p = run.start("mels")
    wait_until(lambda: len(frames_done(art)) >= len(first) + 2, p)
    time.sleep(rng.uniform(0, 0.3))
    run.kill(p, "mels")
    check_artifacts(art)
    bad = None
    if partial(art, "mels") is not None:
        second = frames_done(art)
        assert all(second[k] == v for k, v in first.items()), "finished Mel frames were recomputed"
        # a frame file damaged on disk is recomputed, not read (written atomically it cannot be half)
        bad = sorted(second)[-1]
        f = partial(art, "mels") / "frames" / bad
        f.write_bytes(f.read_bytes()[:50])
    else:  # the second run finished before its kill
        second = first
    run.run("mels")
    mel_dir = next(d for d in (art / "mels").iterdir() if A.is_complete(d))
    final = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (mel_dir / "frames").glob("*.npy")}
    reused = [k for k, v in second.items() if final.get(k) == v]
    assert sorted(reused) == sorted(set(second) - {bad}), "finished Mel frames were recomputed"
    assert len(final) == n_files
    print(f"mels: {len(first)} then {len(second)} of {n_files} files done before the kills; "
          f"{n_files - len(reused)} computed by the resume")

    # 2. tokens, killed while fitting/assigning; then a fake final folder and garbage in .partial
    p = run.start("tokens")
    wait_until(lambda: partial(art, "tokens") is not None, p)
    time.sleep(rng.uniform(0, 1.5))
    run.kill(p, "tokens")
    check_artifacts(art)
    w, fake = partial(art, "tokens"), None
    if w is not None:  # killed in time: plant half-written-looking files; they must never be read
        (w / "tokens.npy").write_bytes(b"\x93NUMPY half")
        (w / "index.csv").write_text("split,name\n")
        fake = w.with_name(w.name[: -len(".partial")])
        fake.mkdir()
        (fake / "manifest.json").write_text('{"complete": tr')  # a manifest cut short
        (fake / "tokens.npy").write_bytes(b"junk")

    # 3. the rest of training, killed twice at random moments of w2v .. train
    for anchor in ("w2v", "train"):
        p = run.start("train")
        wait_until(lambda a=anchor: partial(art, a) is not None or (art / a).is_dir(), p)
        time.sleep(rng.uniform(0, 1.5))
        run.kill(p, f"train@{anchor}")
        check_artifacts(art, fake)
    run.run("train")
    check_artifacts(art)

    # 4. submit: killed before and after its fallback file; an old submission survives or is replaced
    out = tmp_path / "sub" / "submission.csv"
    outcomes = []
    p = run.start("submit", "--out", str(out))
    time.sleep(rng.uniform(0.5, 4.0))
    run.kill(p, "submit")
    outcomes.append(check_submission(out, ids, species, None))
    old_df = pd.read_csv(ref_out)  # an earlier, different, valid submission
    old_df[species] = 0.5
    out.parent.mkdir(parents=True, exist_ok=True)
    old_df.to_csv(out, index=False)
    old = out.read_bytes()
    for _ in range(2):
        p = run.start("submit", "--out", str(out))
        wait_until(lambda: out.read_bytes() != old, p)  # the fallback file replaced the old one
        time.sleep(rng.uniform(0, 1.0))
        run.kill(p, "submit")
        outcomes.append(check_submission(out, ids, species, old))
        check_artifacts(art)
    assert set(outcomes) <= {"absent", "old", "valid"}

    run.run("submit", "--out", str(out))
    validate(pd.read_csv(out), row_ids_expected=ids, species=species)
    assert out.read_bytes() == ref_out.read_bytes(), f"resumed submission differs (seed {SEED})"
    assert stage_files(art) == stage_files(ref_art), f"resumed artifacts differ (seed {SEED})"
    assert not list(art.glob("*/*.partial")), "a stage folder was left unfinished"
    stray = [str(p.relative_to(art)) for p in art.rglob("*.tmp")]  # left by killed writers; not in manifests
    print(f"seed {SEED}: kills {run.kills}, resumes {run.resumes}, submit after kill {outcomes}, "
          f"stray tmp files {stray}")
    assert len(run.kills) >= 4, run.kills
