"""The offline Kaggle kit (vocalprint.tools.kaggle): the package groups and pins, the Kaggle user,
the species check, the generated kernel, its discovery, and an end-to-end run of the kernel in a
fresh CPython venv that holds only the wheel folder's packages."""
from __future__ import annotations

import ast
import json
import logging
import os
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vocalprint.tools import kaggle as K
from vocalprint.tools.kaggle import wheels as W

REPO = Path(__file__).resolve().parents[2]
# Wheels are ~0.2 GB: kept across test runs (and CI runs on the same machine), keyed by requirement hash.
WHEEL_CACHE = Path(os.environ.get("VOCALPRINT_WHEEL_CACHE", "~/.cache/vocalprint-wheels-test")).expanduser()
KAGGLE_PY = os.environ.get("KAGGLE_PY", K.KAGGLE_PY)


# --------------------------------------------------------------------------- groups and pins


def test_every_pin_is_in_exactly_one_group_of_pyproject():
    assert K.repo_root() == REPO
    pins = K.read_pins(REPO / "requirements.txt")
    groups = K.read_groups(REPO / "pyproject.toml")
    assert set(groups) == {K.BASE, "train", "notebooks", "dev"}
    assert "vocalprint" not in groups["dev"]  # dev's vocalprint[train,notebooks] is not a package
    where = K.classify_pins()  # raises on a pin in no group, or in several
    assert set(where) == set(pins), "put the new pin in pyproject.toml's dependencies or one extra"
    assert not K.unpinned(), "pin every package of pyproject.toml in requirements.txt"
    base = K.inference_packages()
    assert base == groups[K.BASE] and {"numpy", "faiss-cpu", "ai-edge-litert"} <= set(base)
    assert not {"tensorflow-cpu", "keras", "gensim", "matplotlib", "pytest"} & set(base)
    reqs = K.inference_requirements()
    assert [r.split("==")[0] for r in reqs] == base
    assert all(r in pins.values() for r in reqs)  # the very lines of requirements.txt
    skipped = K.left_out()
    assert set(skipped) == {"train", "notebooks", "dev"}
    assert "tensorflow-cpu==" + pins["tensorflow-cpu"].split("==")[1] in skipped["train"]
    assert sorted(p for v in skipped.values() for p in v) == sorted(set(pins.values()) - set(reqs))


def _project(tmp_path: Path, deps: list[str], extras: dict, pins: str) -> tuple[Path, Path]:
    def arr(xs):
        return "[" + ", ".join(json.dumps(x) for x in xs) + "]"

    pyproject, req = tmp_path / "pyproject.toml", tmp_path / "requirements.txt"
    pyproject.write_text('[project]\nname = "vocalprint"\ndependencies = ' + arr(deps) + "\n\n"
                         "[project.optional-dependencies]\n" + "".join(f"{k} = {arr(v)}\n" for k, v in extras.items()))
    req.write_text(pins)
    return pyproject, req


def test_pins_are_classified_against_pyproject(tmp_path):
    pyproject, req = _project(tmp_path, ["NumPy>=1.26", "faiss_cpu ; python_version >= '3.10'"],
                              {"train": ["gensim[extra]>=4"], "dev": ["vocalprint[train]", "pytest"]},
                              "numpy==2.4.6\nfaiss-cpu == 1.15.1  # comment\ngensim==4.4.0\npytest==9.0.3\n")
    assert K.read_groups(pyproject) == {K.BASE: ["numpy", "faiss-cpu"], "train": ["gensim"], "dev": ["pytest"]}
    assert K.inference_requirements(req, pyproject) == ["numpy==2.4.6", "faiss-cpu==1.15.1"]
    assert K.left_out(req, pyproject) == {"train": ["gensim==4.4.0"], "dev": ["pytest==9.0.3"]}
    req.write_text(req.read_text() + "dask==2026.8.0\n")
    with pytest.raises(K.KaggleError, match="dask is in no group"):
        K.classify_pins(req, pyproject)
    pyproject, req = _project(tmp_path, ["numpy"], {"train": ["numpy", "gensim"], "notebooks": ["gensim"]},
                              "numpy==2.4.6\ngensim==4.4.0\n")
    with pytest.raises(K.KaggleError, match=r"numpy is in dependencies and train; gensim is in train and notebooks"):
        K.classify_pins(req, pyproject)
    pyproject.write_text('[project]\nname = "other"\n')
    with pytest.raises(K.KaggleError, match="not 'vocalprint'"):
        K.read_groups(pyproject)


def test_repo_root_is_the_nearest_vocalprint_pyproject(tmp_path, monkeypatch):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "vocalprint"\n')
    inner = tmp_path / "vendor" / "x"
    inner.mkdir(parents=True)
    (tmp_path / "vendor" / "pyproject.toml").write_text('[project]\nname = "something-else"\n')
    assert K.repo_root(inner) == tmp_path
    with pytest.raises(K.KaggleError, match="checkout of vocalprint"):
        K.repo_root(Path("/"))
    monkeypatch.setitem(sys.modules, "tomllib", None)  # Python 3.10: no tomllib (and no tomli here)
    monkeypatch.setitem(sys.modules, "tomli", None)
    with pytest.raises(K.KaggleError, match="Python 3.11"):
        K.read_groups(tmp_path / "pyproject.toml")


def test_unpinned_or_missing_inference_requirement_is_refused(tmp_path):
    req = tmp_path / "requirements.txt"
    req.write_text("numpy>=2\n")
    with pytest.raises(K.KaggleError, match="not pinned"):
        K.inference_requirements(req)
    req.write_text("numpy==2.4.6\n")
    with pytest.raises(K.KaggleError, match="no pin for scipy"):
        K.inference_requirements(req)


def test_platform_tags_reach_numpy_2_4_wheels():
    tags = K.platform_tags((2, 35))
    assert "manylinux_2_28_x86_64" in tags and "manylinux_2_27_x86_64" in tags  # numpy 2.4, ai-edge-litert
    assert "manylinux2014_x86_64" in tags and "manylinux_2_36_x86_64" not in tags
    key = K.requirement_key(["numpy==2.4.6"], py="3.11", platforms=tags)
    assert key == K.requirement_key(["numpy==2.4.6"], py="3.11", platforms=tags)
    assert key != K.requirement_key(["numpy==2.4.6"], py="3.12", platforms=tags)


# --------------------------------------------------------------------------- the kernel's code


def test_notebook_and_script_hold_the_same_code():
    nbformat = pytest.importorskip("nbformat")
    cells = K.kernel_cells()
    nb = K.kernel_notebook(cells)
    nbformat.validate(nbformat.from_dict(nb))
    code = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    assert code == [c.rstrip() for c in cells]
    script = K.kernel_script(cells)
    compile(script, K.KERNEL_PY, "exec")
    assert script.count("\n# %%\n") == len(cells)
    for c in cells:
        assert c.rstrip() in script
    imported = {a.name.split(".")[0] for n in ast.walk(ast.parse(script)) if isinstance(n, ast.Import)
                for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(ast.parse(script))
                 if isinstance(n, ast.ImportFrom) and n.module}
    assert imported <= set(sys.stdlib_module_names), imported - set(sys.stdlib_module_names)  # runs before the install


def _fake_bundle(folder: Path, *, stage: str = "bundle") -> Path:
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({"stage": stage, "complete": True}))
    return folder


@pytest.fixture
def kernel(tmp_path_factory):
    """The functions of the generated script (exactly the shipped code), not run as __main__."""
    path = tmp_path_factory.mktemp("kernel") / K.KERNEL_PY
    path.write_text(K.kernel_script())
    return runpy.run_path(str(path), run_name="kernel_under_test")


def test_kernel_finds_attached_datasets(kernel, tmp_path):
    inp = tmp_path / "input"
    comp = inp / "birdclef-2025"
    (comp / "train_audio" / "x" / "deep").mkdir(parents=True)  # never searched
    wheels = inp / "my-wheels"
    wheels.mkdir(parents=True)
    (wheels / K.WHEELS_MARKER).write_text("{}")
    models = inp / "vocalprint-models"
    b_lgbm = _fake_bundle(models / "b-lgbm")
    b_lin = _fake_bundle(models / "a-linear")
    (models / K.MODELS_INDEX).write_text(json.dumps({"order": ["b-lgbm", "a-linear"]}))
    loose = _fake_bundle(inp / "zz-more" / "nested" / "m3")
    _fake_bundle(inp / "zz-more" / "stage-folder", stage="train")  # not a bundle
    env = {"VOCALPRINT_INPUT": str(inp)}
    assert kernel["kernel_find_wheels"](env) == wheels
    assert kernel["kernel_find_bundles"](env) == [b_lgbm, b_lin, loose]  # models.json order kept
    assert kernel["kernel_find_data"](env) == comp
    # overrides
    assert kernel["kernel_find_bundles"]({**env, "VOCALPRINT_MODELS": f"{loose},{models}"}) == [loose, b_lgbm, b_lin]
    assert kernel["kernel_find_data"]({**env, "DATA_DIR": "/elsewhere"}) == Path("/elsewhere")
    err = kernel["KernelError"]
    with pytest.raises(err, match="no vocalprint-wheels.json there"):
        kernel["kernel_find_wheels"]({**env, "VOCALPRINT_WHEELS": str(models)})
    with pytest.raises(err, match="no model bundle in"):
        kernel["kernel_find_bundles"]({**env, "VOCALPRINT_MODELS": str(wheels)})
    empty = tmp_path / "empty"
    empty.mkdir()
    for fn in ("kernel_find_wheels", "kernel_find_bundles", "kernel_find_data"):
        with pytest.raises(err, match="attach"):
            kernel[fn]({"VOCALPRINT_INPUT": str(empty)})
    (models / K.MODELS_INDEX).write_text(json.dumps({"order": ["b-lgbm", "gone"]}))
    with pytest.raises(err, match="gone"):
        kernel["kernel_find_bundles"](env)


def test_kernel_install_checks_python_and_skips_a_done_install(kernel, tmp_path):
    wheels, site = tmp_path / "wheels", tmp_path / "site"
    wheels.mkdir()
    marker = {"python": "2.7", "dependencies": True, "key": "k1", "vocalprint": {"sha256": "abc"}}
    (wheels / K.WHEELS_MARKER).write_text(json.dumps(marker))
    with pytest.raises(kernel["KernelError"], match="KAGGLE_PY="):
        kernel["kernel_install"](wheels, site)
    marker["python"] = "%d.%d" % sys.version_info[:2]
    (wheels / K.WHEELS_MARKER).write_text(json.dumps(marker))
    site.mkdir()
    stamp = {"key": "k1", "vocalprint": {"sha256": "abc"}, "wheels": str(wheels)}
    (site / ".vocalprint-installed.json").write_text(json.dumps(stamp))
    kernel["kernel_install"](wheels, site)  # same wheel set already there: pip is not run
    stamp["key"] = "k0"  # another wheel set: pip runs, and fails here (no requirements.txt)
    (site / ".vocalprint-installed.json").write_text(json.dumps(stamp))
    with pytest.raises(kernel["KernelError"], match="failed"):
        kernel["kernel_install"](wheels, site)


def test_build_refuses_what_is_not_a_bundle(tmp_path):
    stage = _fake_bundle(tmp_path / "stage", stage="train")
    with pytest.raises(K.KaggleError):
        K.build(tmp_path / "out", bundles=[stage], wheels=False)
    with pytest.raises(K.KaggleError, match="no bundle"):
        K.build(tmp_path / "out", bundles=[], wheels=False)
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- the Kaggle user, species


@pytest.fixture
def no_kaggle_user(tmp_path, monkeypatch):
    """A HOME without ~/.kaggle and no Kaggle variables; returns that HOME."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for var in ("KAGGLE_USERNAME", "KAGGLE_CONFIG_DIR", "KAGGLE_KEY"):
        monkeypatch.delenv(var, raising=False)
    return home


def test_kaggle_user_from_option_env_or_kaggle_json(no_kaggle_user, monkeypatch, caplog):
    home = no_kaggle_user
    with caplog.at_level(logging.WARNING, logger=K.kit.__name__):
        assert K.resolve_user(None) == (K.PLACEHOLDER_USER, "placeholder")
    assert "KAGGLE_USERNAME" in caplog.text and "kaggle.json" in caplog.text and "KAGGLE_USER=" in caplog.text
    (home / ".kaggle").mkdir()
    (home / ".kaggle" / "kaggle.json").write_text(json.dumps({"username": "from-json", "key": "x"}))
    assert K.resolve_user(K.PLACEHOLDER_USER) == ("from-json", str(home / ".kaggle" / "kaggle.json"))
    monkeypatch.setenv("KAGGLE_USERNAME", "from-env")
    assert K.resolve_user(None) == ("from-env", "KAGGLE_USERNAME")
    assert K.resolve_user("given") == ("given", "--user")
    monkeypatch.delenv("KAGGLE_USERNAME")
    other = home / "elsewhere"
    other.mkdir()
    (other / "kaggle.json").write_text(json.dumps({"username": "from-config-dir"}))
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(other))  # where the kaggle CLI looks too
    assert K.resolve_user("") == ("from-config-dir", str(other / "kaggle.json"))
    (other / "kaggle.json").write_text("{not json")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=K.kit.__name__):
        assert K.resolve_user(None)[0] == K.PLACEHOLDER_USER
    assert "cannot read a user name" in caplog.text


def _species_bundle(folder: Path, species: list[str]) -> Path:
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({"stage": "bundle", "complete": True, "files": {},
                                                      "model": "fake", "species": species}))
    return folder


def _taxonomy(folder: Path, species: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"primary_label": species, "scientific_name": species, "common_name": species,
                  "class_name": "Aves"}).to_csv(folder / "taxonomy.csv", index=False)
    return folder / "taxonomy.csv"


def test_species_of_a_bundle_are_compared_with_the_taxonomy(tmp_path, caplog):
    comp = [f"sp{i}" for i in range(10)]
    tax = _taxonomy(tmp_path / "data", comp)
    assert K.competition_species(tax) == comp
    assert K.competition_species(tmp_path / "data") == comp  # a data folder: its submission columns
    with caplog.at_level(logging.WARNING, logger=K.kit.__name__):
        same = K.compare_species({"species": comp[::-1]}, comp)
    assert same == {"bundle": 10, "competition": 10, "missing": [], "extra": []} and not caplog.text
    with caplog.at_level(logging.WARNING, logger=K.kit.__name__):
        diff = K.compare_species({"species": comp[3:] + ["new1", "new2"]}, comp, bundle="b", source=str(tax))
    assert diff["missing"] == ["sp0", "sp1", "sp2"] and diff["extra"] == ["new1", "new2"]
    assert "3 competition species are missing" in caplog.text and "2 of its species are not" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=K.kit.__name__):
        K.compare_species({"species": ["x"]}, comp)
    assert "NONE of the competition's species" in caplog.text
    with pytest.raises(K.KaggleError, match="primary_label"):
        (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
        K.competition_species(tmp_path / "bad.csv")


def test_build_without_wheels_resolves_user_and_warns_on_species(no_kaggle_user, tmp_path, monkeypatch, caplog):
    """The whole kit build, with the vocalprint wheel faked (no pip run): user, species, marker."""
    def fake_wheel(folder, root=None):
        p = folder / "vocalprint-0.0.0-py3-none-any.whl"
        p.write_bytes(b"not a wheel")
        return p

    monkeypatch.setattr(W, "build_vocalprint_wheel", fake_wheel)
    monkeypatch.setenv("KAGGLE_USERNAME", "someone")
    comp = [f"sp{i}" for i in range(6)]
    tax = _taxonomy(tmp_path / "data", comp)
    bundle = _species_bundle(tmp_path / "b" / "fake-linear", comp[:4])
    with caplog.at_level(logging.WARNING, logger=K.kit.__name__):
        s = K.build(tmp_path / "kit", bundles=[bundle], wheels=False, taxonomy=tax)
    assert "2 competition species are missing" in caplog.text
    assert s["user"] == "someone" and s["user_from"] == "KAGGLE_USERNAME"
    assert s["species"][str(bundle)] == {"bundle": 4, "competition": 6, "missing": 2, "extra": 0}
    kit = tmp_path / "kit"
    assert json.loads((kit / K.KERNEL / "kernel-metadata.json").read_text())["dataset_sources"] == [
        f"someone/{K.WHEELS}", f"someone/{K.MODELS}"]
    marker = json.loads((kit / K.WHEELS / K.WHEELS_MARKER).read_text())
    assert marker["dependencies"] is False and marker["requirements"] == []
    assert set(marker["left_out"]) == {"train", "notebooks", "dev"}
    assert json.loads((kit / K.MODELS / K.MODELS_INDEX).read_text())["order"] == ["fake-linear"]
    assert (kit / K.KERNEL / K.KERNEL_PY).read_text() == K.kernel_script()
    with pytest.raises(K.KaggleError, match="from --user"):
        K.build(tmp_path / "kit2", bundles=[bundle], wheels=False, user="Not_Valid")
    assert K.main(["build", "--out", str(tmp_path / "kit3"), "--bundle", str(bundle), "--no-wheels",
                   "--user", K.PLACEHOLDER_USER]) == 0  # what `make kaggle` passes by default
    assert json.loads((tmp_path / "kit3" / "build.json").read_text())["user"] == "someone"


# --------------------------------------------------------------------------- end to end


def _python(version: str) -> str:
    exe = shutil.which(f"python{version}")
    if not exe:
        pytest.skip(f"python{version} is not installed (the Kaggle kernel's CPython)")
    return exe


def _clean_env(**extra: str) -> dict:
    """No PYTHONPATH (the repo must not leak in) and no pip configuration (no index, no extra links)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PIP_", "VOCALPRINT_", "PYTHON")) and k not in ("DATA_DIR", "VIRTUAL_ENV")}
    env.update(PIP_CONFIG_FILE=os.devnull, VOCALPRINT_LOG="WARNING", **extra)
    return env


def _kaggle_input(root: Path, demo: Path, kit: Path) -> Path:
    """``root/input`` laid out like /kaggle/input: the competition without training data, and the
    two datasets as uploaded."""
    comp = root / "input" / "birdclef-2025"
    comp.mkdir(parents=True)
    for name in ("sample_submission.csv", "taxonomy.csv"):
        shutil.copy2(demo / name, comp / name)
    shutil.copytree(demo / "test_soundscapes", comp / "test_soundscapes")
    for name in (K.WHEELS, K.MODELS):
        shutil.copytree(kit / name, root / "input" / name, copy_function=os.link)
    return root / "input"


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_offline_kernel_matches_dev_submit(trained, demo_dir, tmp_path, monkeypatch):
    from vocalprint.serving.bundle import save_bundle
    from vocalprint.serving.submission import validate

    py = _python(KAGGLE_PY)
    _, _, pred = trained
    bundle = save_bundle(pred, tmp_path / "bundles" / "stsg-linear", info={"data": str(demo_dir)})
    kit = tmp_path / "kaggle"
    summary = K.build(kit, bundles=[bundle], py=KAGGLE_PY, cache=WHEEL_CACHE)
    assert {p.name for p in kit.iterdir()} == {K.WHEELS, K.MODELS, K.KERNEL, "build.json", "README.md"}
    for name in (K.WHEELS, K.MODELS):
        meta = json.loads((kit / name / "dataset-metadata.json").read_text())
        assert meta["id"] == f"{K.PLACEHOLDER_USER}/{name}" and meta["licenses"]
    kmeta = json.loads((kit / K.KERNEL / "kernel-metadata.json").read_text())
    assert kmeta["enable_internet"] is False and kmeta["code_file"] == K.KERNEL_NB
    assert (kit / K.KERNEL / kmeta["code_file"]).is_file()
    assert summary["bytes"][K.WHEELS] > 50e6
    wheels = sorted(p.name for p in (kit / K.WHEELS).glob("*.whl"))
    assert any(w.startswith("vocalprint-") and w.endswith("-py3-none-any.whl") for w in wheels)
    assert not any(w.startswith(("gensim", "tensorflow", "keras", "matplotlib", "pytest")) for w in wheels)

    # a rebuild in place with the same pins reuses the previous build's wheels (no download) and
    # swaps the new folder in; --no-wheels ships the vocalprint wheel alone
    with monkeypatch.context() as m:
        m.setattr(W, "download_deps", lambda *a, **k: pytest.fail("downloaded the same wheels again"))
        again = K.build(kit, bundles=[bundle], py=KAGGLE_PY)
        assert again["requirements_key"] == summary["requirements_key"]
        assert sorted(again["wheels"]) == sorted(summary["wheels"])
        assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp/old folders left
        K.build(tmp_path / "slim", bundles=[bundle], py=KAGGLE_PY, wheels=False)
    slim = tmp_path / "slim" / K.WHEELS
    assert [p.name.split("-")[0] for p in slim.glob("*.whl")] == ["vocalprint"]
    assert json.loads((slim / K.WHEELS_MARKER).read_text())["dependencies"] is False

    inp = _kaggle_input(tmp_path, demo_dir, kit)
    data = inp / "birdclef-2025"
    venv = tmp_path / "venv"
    subprocess.run([py, "-m", "venv", str(venv)], check=True, env=_clean_env())
    vpy = str(venv / "bin" / "python")
    work = tmp_path / "working"
    work.mkdir()
    out = work / "submission.csv"
    site = tmp_path / "site"
    env = _clean_env(VOCALPRINT_WHEELS=str(inp / K.WHEELS), VOCALPRINT_MODELS=str(inp / K.MODELS),
                     DATA_DIR=str(data), VOCALPRINT_OUT=str(out), BUDGET_MIN="20", VOCALPRINT_JOBS="2",
                     VOCALPRINT_SITE=str(site), VOCALPRINT_INPUT=str(tmp_path / "no-kaggle-input"))
    res = subprocess.run([vpy, str(kit / K.KERNEL / K.KERNEL_PY)], cwd=work, env=env,
                         capture_output=True, text=True, timeout=480)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]

    # vocalprint came from its wheel, and the interpreter saw only what the wheel folder gave it
    probe = subprocess.run([vpy, "-c", "import importlib.util as u, vocalprint; print(vocalprint.__file__); "
                            "print([m for m in ('gensim', 'tensorflow', 'keras', 'matplotlib', 'pytest') "
                            "if u.find_spec(m)])"], cwd=work, env=_clean_env(PYTHONPATH=str(site)),
                           capture_output=True, text=True)
    assert probe.returncode == 0, probe.stderr
    where, extra = probe.stdout.split("\n")[:2]
    assert where.startswith(str(site)), where
    assert extra == "[]"
    installed = {d.name.split("-")[0].lower() for d in site.glob("*.dist-info")}
    assert {"numpy", "faiss_cpu", "librosa", "vocalprint"} <= installed

    sample = pd.read_csv(data / "sample_submission.csv")
    sub = pd.read_csv(out)
    species = list(sample.columns[1:])
    validate(sub, row_ids_expected=list(sample["row_id"]), species=species)
    assert len(sub) == len(sample)
    timing = json.loads((work / "timing.json").read_text())
    assert timing["predicted_files"] == timing["files"] > 0 and not timing["fallback_files"]

    # the same bundle through `submit --bundle` in the dev environment gives the same scores
    ref = tmp_path / "ref" / "submission.csv"
    dev_env = _clean_env(PYTHONPATH=str(REPO / "src"))
    res = subprocess.run([sys.executable, "-m", "vocalprint", "submit", "--bundle", str(bundle), "--data", str(data),
                          "--out", str(ref), "--budget-min", "20", "--set", "run.n_jobs=2",
                          "--artifacts", str(tmp_path / "dev-artifacts")],
                         cwd=tmp_path, env=dev_env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-4000:]
    want = pd.read_csv(ref).set_index("row_id")
    got = sub.set_index("row_id").loc[want.index, want.columns]
    assert np.allclose(got.to_numpy(), want.to_numpy())
    assert got.to_numpy().std() > 0  # real predictions, not the constant prior
