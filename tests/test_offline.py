"""Offline: training and inference make no network call (a Kaggle kernel has no internet).

A ``sitecustomize.py`` first on ``PYTHONPATH`` replaces the socket connect functions and name
resolution in every Python process of the run (joblib's loky workers inherit the environment) with
functions that record the attempt and raise. The run must succeed and the record must stay empty,
so a library that swallows the error would still be caught.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from conftest import REPO, run_env
from vocalprint.serving.submission import validate

FAST = ("tokens.k=32", "w2v.epochs=1", "w2v.dim=16", "w2v.workers=1", "train.folds=3", "run.progress=false",
        "submit.model=stsg-linear")  # the staged token pipeline

SITECUSTOMIZE = '''
import os, socket, traceback

_LOG, _MARK = os.environ.get("VP_NET_LOG"), os.environ.get("VP_NET_MARK")
if _MARK:
    with open(_MARK, "a") as f:
        f.write(f"{os.getpid()}\\n")


def _refuse(what, arg):
    if _LOG:
        with open(_LOG, "a") as f:
            f.write(f"pid {os.getpid()} {what} {arg!r}\\n{''.join(traceback.format_stack(limit=12))}\\n")
    raise OSError(f"network access is disabled in this test ({what} {arg!r})")


_INET = (socket.AF_INET, socket.AF_INET6)
_connect, _connect_ex, _sendto = socket.socket.connect, socket.socket.connect_ex, socket.socket.sendto


def connect(self, address):
    if self.family in _INET:
        _refuse("connect", address)
    return _connect(self, address)


def connect_ex(self, address):
    if self.family in _INET:
        _refuse("connect_ex", address)
    return _connect_ex(self, address)


def sendto(self, *args):
    if self.family in _INET:
        _refuse("sendto", args[-1])
    return _sendto(self, *args)


def create_connection(address, *a, **k):
    _refuse("create_connection", address)


def getaddrinfo(host, *a, **k):
    _refuse("getaddrinfo", host)


socket.socket.connect, socket.socket.connect_ex, socket.socket.sendto = connect, connect_ex, sendto
socket.create_connection, socket.getaddrinfo = create_connection, getaddrinfo
'''


@pytest.fixture
def offline_env(tmp_path) -> dict:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = run_env()
    env["PYTHONPATH"] = os.pathsep.join([str(site), env["PYTHONPATH"]])
    env["VP_NET_LOG"] = str(tmp_path / "net.log")
    env["VP_NET_MARK"] = str(tmp_path / "pids.txt")
    for k in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        env.pop(k, None)
    return env


def _run(args: list[str], env: dict) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "vocalprint", *args]
    for s in FAST:
        cmd += ["--set", s]
    return subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=600)


def test_the_block_works(offline_env, tmp_path):
    code = ("import urllib.request\ntry:\n urllib.request.urlopen('http://example.com', timeout=5)\n"
            "except OSError as e:\n print('refused', e)")
    r = subprocess.run([sys.executable, "-c", code], env=offline_env, capture_output=True, text=True, timeout=60)
    assert "refused" in r.stdout, r.stdout + r.stderr
    assert "('example.com', 80)" in (tmp_path / "net.log").read_text()


@pytest.mark.slow
def test_train_and_submit_make_no_network_call(offline_env, tmp_path):
    from vocalprint.data.demo import make_demo

    data = make_demo(tmp_path / "demo", n_species=6, clips_per_species=3, n_train_soundscapes=1,
                     n_test_soundscapes=3)
    art, out = tmp_path / "art", tmp_path / "sub" / "submission.csv"
    r = _run(["submit", "--data", str(data), "--artifacts", str(art), "--out", str(out)], offline_env)
    assert r.returncode == 0, r.stderr[-4000:]
    log = tmp_path / "net.log"
    assert not log.exists(), log.read_text()[:4000]
    pids = set((tmp_path / "pids.txt").read_text().split())
    assert len(pids) >= 3, f"the block reached {len(pids)} processes; joblib workers too?"
    sample = pd.read_csv(data / "sample_submission.csv")
    validate(pd.read_csv(out), row_ids_expected=list(sample["row_id"]), species=list(sample.columns[1:]))
    assert json.loads(out.with_name("timing.json").read_text())["predicted_files"] == 3

    # the Kaggle way: a model bundle, then submit from it alone
    bundle = tmp_path / "bundle"
    r = _run(["export", "--data", str(data), "--artifacts", str(art), "--out", str(bundle)], offline_env)
    assert r.returncode == 0, r.stderr[-4000:]
    out2 = tmp_path / "sub2" / "submission.csv"
    r = _run(["submit", "--data", str(data), "--artifacts", str(tmp_path / "unused"), "--bundle", str(bundle),
              "--out", str(out2)], offline_env)
    assert r.returncode == 0, r.stderr[-4000:]
    assert not log.exists(), log.read_text()[:4000]
    assert out2.read_bytes() == out.read_bytes()
    assert len(set((tmp_path / "pids.txt").read_text().split())) > len(pids)
