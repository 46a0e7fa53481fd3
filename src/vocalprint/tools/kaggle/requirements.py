"""Which packages the Kaggle kernel installs: the groups of pyproject.toml, the pins of requirements.txt.

pyproject.toml says what each use needs: ``[project] dependencies`` is inference (``vocalprint
submit --bundle``, what the kernel runs), the extras ``train``, ``notebooks`` and ``dev`` the rest.
requirements.txt holds the exact versions (``name==version``) measured to install together. Every
pin belongs to the base dependencies or to exactly one extra (:func:`classify_pins`), so a new pin
forces a decision; the kernel's wheels are the pins of the base dependencies.
"""
from __future__ import annotations

import functools
import re
from pathlib import Path

PROJECT = "vocalprint"
BASE = "dependencies"  # the group name of ``[project] dependencies`` in what this module returns


class KaggleError(RuntimeError):
    """A build that cannot be made: the message says what is missing."""


def canonical(name: str) -> str:
    """PEP 503 project name: ``Faiss_CPU`` -> ``faiss-cpu``."""
    return re.sub(r"[-_.]+", "-", name).lower()


_REQ = re.compile(r"\s*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*(?:\[([^\]]*)\])?\s*(.*)")


def requirement_name(spec: str) -> tuple[str, tuple[str, ...]]:
    """``"Faiss_CPU[x] >=1.7; python_version>'3'"`` -> ``("faiss-cpu", ("x",))``."""
    m = _REQ.fullmatch(spec)
    if not m:
        raise KaggleError(f"cannot read the requirement {spec!r}")
    extras = tuple(canonical(e.strip()) for e in (m.group(2) or "").split(",") if e.strip())
    return canonical(m.group(1)), extras


def _toml():
    try:
        import tomllib
    except ModuleNotFoundError:  # Python < 3.11
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise KaggleError("reading pyproject.toml needs Python 3.11 or later (tomllib), or the tomli "
                              "package: run the Kaggle build with the project's venv") from None
    return tomllib


def _load_toml(path: Path) -> dict:
    tomllib = _toml()
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as e:
        raise KaggleError(f"cannot read {path}: {e}") from None
    except tomllib.TOMLDecodeError as e:
        raise KaggleError(f"{path}: not valid TOML ({e})") from None


def _is_ours(pyproject: Path) -> bool:
    if not pyproject.is_file():
        return False
    try:
        return _load_toml(pyproject).get("project", {}).get("name") == PROJECT
    except KaggleError:
        return False


@functools.lru_cache(maxsize=None)
def repo_root(start: Path | None = None) -> Path:
    """The checkout holding ``pyproject.toml`` (``name = "vocalprint"``) and ``requirements.txt``:
    the first such folder above ``start`` (default: this file)."""
    _toml()  # a Python without a TOML reader gets that error, not "no pyproject.toml"
    here = Path(start or __file__).resolve()
    for d in (here, *here.parents):
        if _is_ours(d / "pyproject.toml"):
            return d
    raise KaggleError(f"no pyproject.toml of {PROJECT} above {here}: build the Kaggle kit from a "
                      "checkout of vocalprint (an installed vocalprint has no requirements.txt)")


def _default(path: Path | str | None, name: str) -> Path:
    return Path(path) if path is not None else repo_root() / name


def read_groups(pyproject: Path | str | None = None) -> dict[str, list[str]]:
    """``{"dependencies": [names], extra: [names], ...}`` from pyproject.toml: canonical names in
    the file's order; an extra's reference to this project's own extras (``vocalprint[train]``)
    is not a package and is left out."""
    path = _default(pyproject, "pyproject.toml")
    project = _load_toml(path).get("project", {})
    if canonical(project.get("name", "")) != PROJECT:
        raise KaggleError(f"{path}: [project] name is {project.get('name')!r}, not {PROJECT!r}")
    if "dependencies" in project.get("dynamic", []):
        raise KaggleError(f"{path}: dependencies are dynamic; list them in [project] dependencies")
    groups = {BASE: project.get("dependencies", [])}
    for extra, specs in project.get("optional-dependencies", {}).items():
        if canonical(extra) == BASE:
            raise KaggleError(f"{path}: an extra may not be called {extra!r}")
        groups[canonical(extra)] = specs
    out = {}
    for group, specs in groups.items():
        names = [requirement_name(s)[0] for s in specs]
        out[group] = list(dict.fromkeys(n for n in names if n != PROJECT))
    return out


def inference_packages(pyproject: Path | str | None = None) -> list[str]:
    """What ``submit --bundle`` imports: the names of ``[project] dependencies``, in order."""
    return read_groups(pyproject)[BASE]


def read_pins(path: Path | str | None = None) -> dict[str, str]:
    """``{canonical name: "name==version"}`` of a requirements file (comments and blanks skipped)."""
    path = _default(path, "requirements.txt")
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


def classify_pins(requirements: Path | str | None = None,
                  pyproject: Path | str | None = None) -> dict[str, str]:
    """``{pinned name: its group}`` ("dependencies" or an extra); refuses a pin that is in no
    group of pyproject.toml or in several."""
    pins, groups = read_pins(requirements), read_groups(pyproject)
    out, problems = {}, []
    for name in pins:
        where = [g for g, names in groups.items() if name in names]
        if len(where) == 1:
            out[name] = where[0]
        else:
            problems.append(f"{name} is in {' and '.join(where)}" if where else f"{name} is in no group")
    if problems:
        raise KaggleError(f"{_default(requirements, 'requirements.txt')}: every pin must be in pyproject.toml's "
                          f"[project] dependencies or in exactly one extra ({'; '.join(problems)})")
    return out


def left_out(requirements: Path | str | None = None,
             pyproject: Path | str | None = None) -> dict[str, list[str]]:
    """The pins the kernel does not install, by extra: ``{"train": ["gensim==4.4.0", ...], ...}``."""
    pins = read_pins(requirements)
    out: dict[str, list[str]] = {}
    for name, group in classify_pins(requirements, pyproject).items():
        if group != BASE:
            out.setdefault(group, []).append(re.sub(r"\s+", "", pins[name]))
    return out


def unpinned(requirements: Path | str | None = None,
             pyproject: Path | str | None = None) -> dict[str, list[str]]:
    """Packages of pyproject.toml that requirements.txt does not pin, by group (should be empty)."""
    pins = read_pins(requirements)
    return {g: miss for g, names in read_groups(pyproject).items() if (miss := [n for n in names if n not in pins])}


def inference_requirements(requirements: Path | str | None = None,
                           pyproject: Path | str | None = None) -> list[str]:
    """The pinned lines of requirements.txt for :func:`inference_packages`, in that order."""
    path = _default(requirements, "requirements.txt")
    pins = read_pins(path)
    out = []
    for name in inference_packages(pyproject):
        line = pins.get(name)
        if line is None:
            raise KaggleError(f"{path}: no pin for {name}, which inference needs")
        if not re.search(r"==\s*[\w.!+]+$", line):
            raise KaggleError(f"{path}: {line!r} is not pinned with ==; the Kaggle wheels must be exact")
        out.append(re.sub(r"\s+", "", line))
    return out
