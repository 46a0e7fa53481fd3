"""The package's shape: no import cycles (imports inside functions included), modules of a few
hundred lines, the family order respected, cache keys unchanged by the layout, and bundles
pickled under the old flat layout still loading with the same predictions."""
from __future__ import annotations

import ast
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vocalprint import config as C

REPO = Path(__file__).resolve().parents[1]
PKG = REPO / "src" / "vocalprint"
MAX_LINES = 420  # "about 400"
# lower rows never import higher ones; the top (cli, pipeline, models, __main__) may import anything.
# The teacher sits below the tokens: teacher-taught token tables (nb.teacher_weight) read its cache.
ORDER = ("config", "core", "data", "audio", "teacher", "tokens", "student", "serving", "tools")


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def import_graph() -> dict[str, set[str]]:
    """module -> the vocalprint modules it imports anywhere in its body (``from x import y`` counts
    ``x.y`` when that is a module, else ``x``)."""
    mods = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        is_pkg = path.name == "__init__.py"
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name.startswith("vocalprint")}
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name.split(".") if is_pkg else name.split(".")[:-1]
                    base = base[:len(base) - node.level + 1]
                    mod = ".".join(base + ([node.module] if node.module else []))
                else:
                    mod = node.module or ""
                if not mod.startswith("vocalprint"):
                    continue
                for a in node.names:
                    deps.add(f"{mod}.{a.name}" if f"{mod}.{a.name}" in mods else mod)
        graph[name] = {d for d in deps if d in mods and d != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (a list of modules, first == last), or None."""
    colour: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        colour[n] = 1
        stack.append(n)
        for d in sorted(graph.get(n, ())):
            if colour.get(d) == 1:
                return stack[stack.index(d):] + [d]
            if not colour.get(d):
                found = visit(d)
                if found:
                    return found
        stack.pop()
        colour[n] = 2
        return None

    for n in sorted(graph):
        if not colour.get(n):
            found = visit(n)
            if found:
                return found
    return None


def test_cycle_finder_finds_a_planted_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles():
    graph = import_graph()
    assert len(graph) > 40 and graph["vocalprint.cli"], "the walk found the package"
    cycle = find_cycle(graph)
    assert cycle is None, " -> ".join(cycle)


def test_families_import_only_lower_families():
    def family(mod: str) -> str | None:
        parts = mod.split(".")
        return parts[1] if len(parts) > 1 and parts[1] in ORDER else None

    bad = []
    for mod, deps in import_graph().items():
        f = family(mod)
        if f is None:
            continue
        for d in deps:
            g = family(d)
            if d == "vocalprint":  # the package root holds only __version__
                continue
            if g is None or ORDER.index(g) > ORDER.index(f):
                bad.append(f"{mod} -> {d}")
    assert not bad, "\n".join(bad)


def test_config_imports_nothing_else_of_vocalprint():
    for mod, deps in import_graph().items():
        if mod.startswith("vocalprint.config"):
            assert all(d.startswith("vocalprint.config") for d in deps), (mod, deps)


def test_no_module_is_long():
    long = {n: len(p.read_text().splitlines()) for n, p in _modules().items()}
    long = {n: k for n, k in long.items() if k > MAX_LINES}
    assert not long, long


# -------------------------------------------------------------------------------- cache keys

class _Data:
    species = ("a", "b", "c")
    train_soundscapes = ()
    train = pd.DataFrame({"path": [], "primary": [], "filename": []})

    def fingerprint(self) -> str:
        return "dsfp"


# Keys computed by the flat layout before the package was laid out by family (same inputs); the
# linear heads' since ``train.linear.solver`` (Newton-Cholesky for narrow features); the students'
# since ``distill.window_budget`` at 1,000,000 (with the budget off they are the former ones: below)
# and since ``distill.max_soundscape_windows`` at 40,000 (with the cap off: the keys before it);
# ``tokens-nb``'s since ``nb.k`` at 512 (at 1,024: the keys before it); ``tokens-cnn``'s since
# ``distill.token_quant`` at ``body`` (at ``weights``: the key before it).
PINNED = {
    "mel": "c4c1b36edd32", "tokens": "e362c1d1e999", "w2v": "e39096ca409f", "features": "0ff755477e92",
    "train-stsg-linear": "58419dd284fc", "train-melstats-lgbm": "8bd8cdffaa9e",
    "train-birdnet-probe": "f4ed67286ac6", "nb": "557a961aac08", "nb-taught": "b8a575ac76a2",
    "teacher-model": "02276077a387", "teacher-cache": "59f30f4c38c1", "tfeatures": "1f089487cce3",
    "tmixes": "cba5bf60c418", "student-0": "5cc932ee236c", "student-1": "87fe08ce1485",
    "tokens-cnn-0": "65224484c042",
}
TOKENS_BEFORE_BODY = {"tokens-cnn-0": "c10b9b14c7cd"}
STUDENTS_BEFORE_SOUNDSCAPE_CAP = {"student-0": "a6bde4f3f8f2", "student-1": "a8597e16efc9",
                                  "tokens-cnn-0": "29cfc4111ccf"}
STUDENTS_BEFORE_BUDGET = {"student-0": "5e477d7fbf19", "student-1": "0ccaa1105ade", "tokens-cnn-0": "8fe279042273"}
NB_BEFORE_K512 = {"nb": "fb98100e5448", "nb-taught": "8d3ffc6f222c"}


def current_keys(*overrides: str) -> dict[str, str]:
    from vocalprint.audio import mel
    from vocalprint.student import stage as student
    from vocalprint.teacher import stage as teach
    from vocalprint.tokens import codebook, features, train, w2v
    from vocalprint.tokens.nb import stage as nb

    cfg, ds = C.load(None, list(overrides)), _Data()
    tcfg = replace(cfg, distill=replace(cfg.distill, front="tokens"))
    nbt = replace(cfg, nb=replace(cfg.nb, teacher_weight=0.2))
    return {
        "mel": mel.key(cfg, ds), "tokens": codebook.key(cfg, "melkey"), "w2v": w2v.key(cfg, "tokkey"),
        "features": features.key(cfg, "w2vkey"),
        "train-stsg-linear": train.key(cfg, "stsg-linear", "featkey"),
        "train-melstats-lgbm": train.key(cfg, "melstats-lgbm", "featkey"),
        "train-birdnet-probe": train.key(cfg, "birdnet-probe", "tfkey", head="linear"),
        "nb": nb.key(cfg, ds), "nb-taught": nb.key(nbt, ds, "teacherkey"),
        "teacher-model": teach.model_key(cfg), "teacher-cache": teach.cache_key(cfg, ds),
        "tfeatures": teach.features_key(cfg, "cachekey", "featkey"),
        "tmixes": student.mixes_key(cfg, "cachekey"),
        "student-0": student.key(cfg, "tfkey", "cachekey", 0), "student-1": student.key(cfg, "tfkey", "cachekey", 1),
        "tokens-cnn-0": student.key(tcfg, "tfkey", "cachekey", 0),
    }


def test_cache_keys_are_unchanged():
    assert current_keys() == PINNED
    uncapped = current_keys("distill.max_soundscape_windows=0", "distill.token_quant=weights")
    assert {k: uncapped[k] for k in STUDENTS_BEFORE_SOUNDSCAPE_CAP} == STUDENTS_BEFORE_SOUNDSCAPE_CAP
    off = current_keys("distill.window_budget=0", "distill.max_soundscape_windows=0", "distill.token_quant=weights")
    assert {k: off[k] for k in STUDENTS_BEFORE_BUDGET} == STUDENTS_BEFORE_BUDGET
    weights = current_keys("distill.token_quant=weights")
    assert {k: weights[k] for k in TOKENS_BEFORE_BODY} == TOKENS_BEFORE_BODY
    k1024 = current_keys("nb.k=1024")
    assert {k: k1024[k] for k in NB_BEFORE_K512} == NB_BEFORE_K512


def test_a_changed_field_changes_its_key():
    cfg = C.load(None, ["tokens.k=2048"])
    from vocalprint.tokens import codebook

    assert codebook.key(cfg, "melkey") != PINNED["tokens"]


# -------------------------------------------------------------------------------- old bundles

LEGACY = REPO / "tests" / "fixtures" / "legacy_bundles"


@pytest.mark.parametrize("model", ["loudness", "melstats-lgbm", "ensemble"])
def test_bundle_pickled_under_the_flat_layout_loads_and_predicts_the_same(model, demo_dir):
    """Bundles written by the flat layout (``vocalprint.predict``, ``vocalprint.nb``, ...) on the
    seed-0 demo data; the ensemble holds tokens-nb and stsg-linear (codebooks, naive-Bayes views,
    heads, every config section). Expected scores: the flat layout's own, on the first test file."""
    from vocalprint.audio.decode import load_audio, n_windows
    from vocalprint.serving.bundle import load_bundle

    manifest = json.loads((LEGACY / model / "manifest.json").read_text())
    assert manifest["model"].startswith(model if model != "ensemble" else "ensemble(")
    pred = load_bundle(LEGACY / model)
    assert isinstance(pred.cfg, C.Config)
    wav = sorted((demo_dir / "test_soundscapes").glob("*.ogg"))[0]
    x = load_audio(wav, sr=32000)
    got = pred.predict(x, n_windows(len(x)), {})
    want = np.load(LEGACY / f"{model}.expected.npy")
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_legacy_remap_names_where_each_old_class_lives():
    from vocalprint.serving.bundle import legacy_class

    assert legacy_class("vocalprint.predict", "StudentPredictor").__module__ == "vocalprint.student.predictor"
    assert legacy_class("vocalprint.distill", "StudentConfig") is C.StudentConfig
    assert legacy_class("vocalprint.tokens", "Codebook").__name__ == "Codebook"
    assert legacy_class("sklearn.linear_model", "LogisticRegression") is None  # not ours: pickle decides
    with pytest.raises(AttributeError, match="no counterpart"):
        legacy_class("vocalprint.predict", "NoSuchPredictor")
