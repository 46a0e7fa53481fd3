"""The Kaggle kernel's code: finds the attached datasets, installs the wheels, runs ``submit --bundle``.

Standard library only: these functions run before vocalprint and its dependencies are installed.
:func:`kernel_cells` copies them verbatim (``inspect.getsource``), with the constants below, into
``kernel/vocalprint_submit.py`` and the notebook, so what the tests import is what Kaggle runs.
Anything a ``kernel_*`` function uses must be a module-level name that :func:`kernel_cells` emits.
"""
from __future__ import annotations

import inspect
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

# The kernel's contract with the kit (build.py writes these, the kernel looks for them).
COMPETITION = "birdclef-2025"
WHEELS, MODELS, KERNEL = "vocalprint-wheels", "vocalprint-models", "kernel"
WHEELS_MARKER = "vocalprint-wheels.json"
MODELS_INDEX = "models.json"
KERNEL_SLUG = "vocalprint-submit"
KERNEL_PY, KERNEL_NB = "vocalprint_submit.py", "vocalprint-submit.ipynb"

_SKIP_DIRS = ("train_audio", "train_soundscapes", "test_soundscapes")


class KernelError(RuntimeError):
    """The kernel cannot run: a dataset is not attached or an override points nowhere."""


def kernel_input(env) -> Path:
    """Where Kaggle mounts the attached datasets (``VOCALPRINT_INPUT``, default /kaggle/input)."""
    return Path(env.get("VOCALPRINT_INPUT") or "/kaggle/input")


def kernel_search(root: Path, hit, *, depth: int = 4) -> list:
    """Folders at most ``depth`` levels below ``root`` (breadth first, sorted by name) for which
    ``hit(folder)`` is true; a hit is not searched further, nor are audio folders."""
    found, level = [], [Path(root)]
    for _ in range(depth + 1):
        below = []
        for d in level:
            if hit(d):
                found.append(d)
                continue
            try:
                below += sorted(p for p in d.iterdir() if p.is_dir() and not p.name.startswith(".")
                                and p.name not in _SKIP_DIRS)
            except OSError:
                pass
        level = below
    return found


def kernel_is_bundle(folder: Path) -> bool:
    """A complete model bundle: ``manifest.json`` of stage ``bundle``."""
    try:
        m = json.loads((Path(folder) / "manifest.json").read_text())
    except (OSError, ValueError):
        return False
    return m.get("stage") == "bundle" and bool(m.get("complete"))


def kernel_find_wheels(env) -> Path:
    """``VOCALPRINT_WHEELS``, else the attached dataset holding ``vocalprint-wheels.json``."""
    if env.get("VOCALPRINT_WHEELS"):
        p = Path(env["VOCALPRINT_WHEELS"])
        if not (p / WHEELS_MARKER).is_file():
            raise KernelError(f"VOCALPRINT_WHEELS={p}: no {WHEELS_MARKER} there")
        return p
    hits = kernel_search(kernel_input(env), lambda d: (d / WHEELS_MARKER).is_file())
    if not hits:
        raise KernelError(f"no {WHEELS_MARKER} under {kernel_input(env)}: attach the vocalprint-wheels "
                          "dataset (Add Input) or set VOCALPRINT_WHEELS")
    if len(hits) > 1:
        print(f"several wheel folders attached: {[str(h) for h in hits]}; using {hits[0]}")
    return hits[0]


def kernel_find_bundles(env) -> list:
    """Model bundles in submit order: ``VOCALPRINT_MODELS`` (comma-separated bundle folders or folders
    holding them), else every bundle attached; a folder with ``models.json`` gives its own order."""
    spec = [s.strip() for s in (env.get("VOCALPRINT_MODELS") or "").split(",") if s.strip()]
    roots = [Path(s) for s in spec] or [kernel_input(env)]
    out = []
    for root in roots:
        found = []
        for d in kernel_search(root, lambda d: kernel_is_bundle(d) or (d / MODELS_INDEX).is_file()):
            if kernel_is_bundle(d):
                found.append(d)
                continue
            names = json.loads((d / MODELS_INDEX).read_text())["order"]
            missing = [n for n in names if not kernel_is_bundle(d / n)]
            if missing:
                raise KernelError(f"{d / MODELS_INDEX} lists {missing}, which are not complete bundles in {d}")
            found += [d / n for n in names]
        if spec and not found:
            raise KernelError(f"VOCALPRINT_MODELS: no model bundle in {root}")
        out += [f for f in found if f not in out]
    if not out:
        raise KernelError(f"no model bundle under {roots[0]}: attach the vocalprint-models dataset "
                          "or set VOCALPRINT_MODELS")
    return out


def kernel_find_data(env) -> Path:
    """``DATA_DIR``, else the competition folder, else an attached folder with a sample submission."""
    if env.get("DATA_DIR"):
        return Path(env["DATA_DIR"])
    root = kernel_input(env)
    if (root / COMPETITION).is_dir():
        return root / COMPETITION
    hits = kernel_search(root, lambda d: (d / "sample_submission.csv").is_file()
                         and (d / "taxonomy.csv").is_file(), depth=2)
    if not hits:
        raise KernelError(f"no competition data under {root}: attach {COMPETITION} or set DATA_DIR")
    return hits[0]


def kernel_run(cmd: list, env=None) -> None:
    """Run ``cmd``, echoing its output line by line (a notebook cell does not show a child's own
    stdout); raise KernelError if it fails."""
    print("+", " ".join(cmd), flush=True)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    for line in proc.stdout:
        print(line, end="", flush=True)
    if proc.wait():
        raise KernelError(f"{' '.join(cmd[:4])} ... failed with exit code {proc.returncode}")


def kernel_install(wheels: Path, site: Path) -> None:
    """pip-install vocalprint and its pinned dependencies from ``wheels`` only (no index, no pip
    configuration) into the folder ``site``, which the submit run puts first on its path: the
    image's own packages are neither changed nor used. Skipped when ``site`` holds this wheel set."""
    marker = json.loads((wheels / WHEELS_MARKER).read_text())
    have = "%d.%d" % sys.version_info[:2]
    if have != marker["python"]:
        raise KernelError(f"this kernel runs Python {have} but {wheels} holds wheels for "
                          f"{marker['python']}: rebuild them with KAGGLE_PY={have}")
    if not marker.get("dependencies"):
        print("the wheel folder has no dependencies (built with --no-wheels): using the image's packages")
    stamp = {"key": marker.get("key"), "vocalprint": marker.get("vocalprint"), "wheels": str(wheels)}
    done = site / ".vocalprint-installed.json"
    try:
        if json.loads(done.read_text()) == stamp:
            print(f"{site}: already installed from {wheels}")
            return
    except (OSError, ValueError):
        pass
    shutil.rmtree(site, ignore_errors=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull  # no index, no extra links from any pip configuration
    cmd = [sys.executable, "-m", "pip", "install", "--no-index", "--find-links", str(wheels),
           "--target", str(site), "--disable-pip-version-check", "--progress-bar", "off",
           "-c", str(wheels / "constraints.txt"), "-r", str(wheels / "requirements.txt")]
    if not marker.get("dependencies"):  # the wheel declares its dependencies; the image provides them
        cmd.insert(4, "--no-deps")
    t0 = time.monotonic()
    kernel_run(cmd, env=env)
    done.write_text(json.dumps(stamp))
    print(f"install: {time.monotonic() - t0:.0f} s", flush=True)


def kernel_warmup(site: Path, env=None) -> None:
    """Compile and cache the front end's numba kernels (the log-Mel's window, PCEN's filter,
    ``tokens-nb``'s float16 frame kernels, and whatever librosa compiles) once, in ``site``, before the
    submit's workers start: a fresh install otherwise compiles in every worker, which also inflates
    the budget's first rate measurement. A failure here only costs that time."""
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = os.pathsep.join([str(site), *filter(None, [env.get("PYTHONPATH")])])
    code = ("import dataclasses\nimport numpy as np\nfrom vocalprint.config import Config\n"
            "from vocalprint.audio.mel import logmel\nmel = Config().mel\n"
            "for m in (mel, dataclasses.replace(mel, frontend='pcen')):\n"
            "    logmel(np.zeros(32000, np.float32), sr=32000, cfg=m)\n"
            "from vocalprint.tokens.halfframes import warm_up\nwarm_up()\n")
    t0 = time.monotonic()
    try:
        kernel_run([sys.executable, "-c", code], env=env)
        print(f"warm-up: {time.monotonic() - t0:.0f} s", flush=True)
    except KernelError as e:
        print(f"warm-up skipped: {e}", flush=True)


def kernel_submit(bundles: list, data: Path, out: Path, *, site: Path, budget_min: float, jobs: int,
                  env=None) -> None:
    """``python -m vocalprint submit --bundle ...`` (the code path of ``make submit``) with ``site``
    first on the path."""
    import tempfile

    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = os.pathsep.join([str(site), *filter(None, [env.get("PYTHONPATH")])])
    env["PYTHONNOUSERSITE"] = "1"
    cmd = [sys.executable, "-m", "vocalprint", "submit", "--bundle", ",".join(str(b) for b in bundles),
           "--data", str(data), "--out", str(out), "--budget-min", f"{budget_min:.2f}",
           "--cores", str(os.cpu_count() or 1), "--set", f"run.n_jobs={jobs}",
           "--artifacts", os.path.join(tempfile.gettempdir(), "vocalprint-artifacts")]
    out.parent.mkdir(parents=True, exist_ok=True)
    kernel_run(cmd, env=env)
    if not out.is_file():
        raise KernelError(f"vocalprint submit finished without writing {out}")


def kernel_main(env=None) -> Path:
    """Find the inputs, install from the wheel folder, write the submission; returns its path."""
    import tempfile

    env = dict(os.environ if env is None else env)
    t0 = time.monotonic()
    budget = float(env.get("BUDGET_MIN") or 90)
    out = Path(env.get("VOCALPRINT_OUT") or "/kaggle/working/submission.csv")
    site = Path(env.get("VOCALPRINT_SITE") or os.path.join(tempfile.gettempdir(), "vocalprint-site"))
    jobs = int(env.get("VOCALPRINT_JOBS") or os.cpu_count() or 1)
    wheels, bundles, data = kernel_find_wheels(env), kernel_find_bundles(env), kernel_find_data(env)
    print(f"wheels  {wheels}\nmodels  {', '.join(map(str, bundles))}\ndata    {data}\nout     {out}\n"
          f"site    {site}\nbudget  {budget:g} min, {jobs} workers, Python {sys.version.split()[0]}", flush=True)
    kernel_install(wheels, site)
    kernel_warmup(site, env)
    left = budget - (time.monotonic() - t0) / 60  # install and warm-up count against the kernel's time
    kernel_submit(bundles, data, out, site=site, budget_min=left, jobs=jobs, env=env)
    with open(out) as f:
        rows = sum(1 for _ in f) - 1
    print(f"{out}: {rows} rows in {time.monotonic() - t0:.0f} s", flush=True)
    return out


_INTRO = f"""# vocalprint: BirdCLEF 2025 submission (offline)

Generated by `python -m vocalprint.tools.kaggle build`; edit `src/vocalprint/tools/kaggle/kernel.py`, not this notebook.

Settings: **Internet off**, accelerator **None** (CPU). Inputs: the competition `{COMPETITION}`, and the
datasets `{WHEELS}` and `{MODELS}` (Add Input). The notebook installs vocalprint from the wheel
dataset (into a folder of its own), finds the model bundles and the data by itself, and runs
`python -m vocalprint submit --bundle ... --data ... --out /kaggle/working/submission.csv`.

Environment overrides: `VOCALPRINT_WHEELS`, `VOCALPRINT_MODELS` (comma-separated, first = main model),
`DATA_DIR`, `VOCALPRINT_OUT`, `BUDGET_MIN` (default 90), `VOCALPRINT_JOBS` (default: all cores),
`VOCALPRINT_INPUT` (default /kaggle/input), `VOCALPRINT_SITE` (where the wheels are installed,
default /tmp/vocalprint-site; the image's own packages are left alone).
"""


def kernel_cells() -> list[str]:
    """The kernel's code cells: constants, discovery, install, submit, the call."""
    src = inspect.getsource
    head = ("import json\nimport os\nimport shutil\nimport subprocess\nimport sys\n"
            "import time\nfrom pathlib import Path\n\n"
            + "".join(f"{k} = {globals()[k]!r}\n" for k in
                      ("COMPETITION", "WHEELS_MARKER", "MODELS_INDEX", "_SKIP_DIRS"))
            + "\n\n" + src(KernelError))
    find = "\n\n".join(src(f) for f in (kernel_input, kernel_search, kernel_is_bundle, kernel_find_wheels,
                                         kernel_find_bundles, kernel_find_data))
    run = 'if __name__ == "__main__":\n    kernel_main()\n'
    return [head, find, src(kernel_run) + "\n\n" + src(kernel_install), src(kernel_warmup) + "\n\n" + src(kernel_submit), src(kernel_main), run]


def kernel_script(cells: list[str] | None = None) -> str:
    """``vocalprint_submit.py``: the notebook's code cells as one script (``# %%`` between cells)."""
    cells = kernel_cells() if cells is None else cells
    doc = '"""' + _INTRO.replace("# vocalprint:", "vocalprint:", 1).rstrip() + '\n"""\n'
    return doc + "".join(f"\n\n# %%\n{c.rstrip()}\n" for c in cells)


def kernel_notebook(cells: list[str] | None = None) -> dict:
    """The notebook (nbformat 4): an introduction, then the code cells of :func:`kernel_script`."""
    cells = kernel_cells() if cells is None else cells

    def cell(kind: str, text: str, i: int) -> dict:
        c = {"cell_type": kind, "id": f"cell-{i}", "metadata": {},
             "source": text.rstrip().splitlines(keepends=True)}
        if kind == "code":
            c.update(execution_count=None, outputs=[])
        return c

    return {"nbformat": 4, "nbformat_minor": 5,
            "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                         "language_info": {"name": "python"}},
            "cells": [cell("markdown", _INTRO, 0), *(cell("code", c, i + 1) for i, c in enumerate(cells))]}
