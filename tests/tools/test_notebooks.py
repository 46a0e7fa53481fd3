"""The analyst notebooks: committed clean and thin; executed on the demo data by the runner."""
from __future__ import annotations

import base64
import json
import subprocess
import sys

import nbformat
import pytest

from conftest import REPO, run_env
from vocalprint.tools import notebooks as N
from vocalprint.tools import report

BOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]-*.ipynb"))
SMALL_CLI = ("--set", "tokens.k=64", "--set", "w2v.epochs=2", "--set", "run.progress=false",
             "--set", "nb.k=64", "--set", "nb.n_mixes=100", "--set", "nb.sample_frames=30000")
MODELS = ("tokens-nb", "melstats-linear")  # the Makefile's default model and a fast second one (no token chain)


def test_both_notebooks_exist():
    assert [b.name for b in BOOKS] == ["01-compare-models.ipynb", "02-vocalprint-tokens.ipynb"]


@pytest.mark.parametrize("path", BOOKS, ids=lambda p: p.stem)
def test_committed_notebook_has_no_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, cell.source[:60]


@pytest.mark.parametrize("path", BOOKS, ids=lambda p: p.stem)
def test_notebook_is_thin_and_parameterised(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert nb.cells[0].cell_type == "code" and "from vocalprint." in nb.cells[0].source
    params = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1
    assert 'os.environ.get("DATA_DIR")' in params[0].source
    assert 'os.environ.get("VOCALPRINT_ARTIFACTS")' in params[0].source
    for c in code:  # longer logic belongs in vocalprint.tools.report
        lines = [ln for ln in c.source.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
        assert len(lines) <= 10, c.source
        assert "def " not in c.source and "class " not in c.source
    src = "\n".join(c.source for c in code)
    for stage in ("pipeline.", ".run(", "submit", "predictor("):  # reads artifacts, never builds them
        assert stage not in src


def test_kernelspec_and_environment_use_this_interpreter(tmp_path):
    kdir = N.write_kernelspec(tmp_path)
    spec = json.loads((kdir / N.KERNEL / "kernel.json").read_text())
    assert spec["argv"][0] == sys.executable and "{connection_file}" in spec["argv"]
    env = N.kernel_env(tmp_path / "data", tmp_path / "art")
    assert env["PYTHONPATH"].split(":")[0] == str(N.SRC)
    assert env["DATA_DIR"] == str((tmp_path / "data").resolve())
    assert env["VOCALPRINT_ARTIFACTS"] == str((tmp_path / "art").resolve())
    assert "inline" in env["MPLBACKEND"]


def test_save_figures_writes_every_png(tmp_path):
    png = base64.b64encode(b"\x89PNG fake").decode()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x")])
    nb.cells[0].outputs = [nbformat.v4.new_output("display_data", data={"image/png": png}),
                           nbformat.v4.new_output("stream", text="hi"),
                           nbformat.v4.new_output("display_data", data={"image/png": png})]
    figs = N.save_figures(nb, tmp_path / "figs")
    assert [f.name for f in figs] == ["fig01.png", "fig02.png"]
    assert figs[0].read_bytes() == b"\x89PNG fake"


def _cli(*args):
    r = subprocess.run([sys.executable, "-m", "vocalprint", *args], env=run_env(), capture_output=True,
                       text=True, cwd=REPO, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]


@pytest.mark.slow
def test_notebooks_run_on_demo_artifacts(demo_dir, tmp_path):
    """Evaluate two models on the demo data through the CLI, then execute both notebooks."""
    art, sub = tmp_path / "art", tmp_path / "sub" / "submission.csv"
    for model in MODELS:
        common = ("--data", str(demo_dir), "--model", model, "--artifacts", str(art), "--out", str(sub))
        _cli("submit", *common, *SMALL_CLI)
        _cli("evaluate", *common)
    _cli("features", "--data", str(demo_dir), "--artifacts", str(art), *SMALL_CLI)  # as make notebooks: notebook 02's chain
    out = tmp_path / "notebooks"
    r = subprocess.run([sys.executable, "-m", "vocalprint.tools.notebooks", "--data", str(demo_dir),
                        "--artifacts", str(art), "--out", str(out)],
                       env=run_env(), capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert r.returncode == 0, r.stderr[-5000:]
    for book in BOOKS:
        nb = nbformat.read(out / book.name, as_version=4)
        outs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
        assert not [o for o in outs if o.output_type == "error"]
        images = [o for o in outs if "image/png" in o.get("data", {})]
        assert len(images) >= 3, book.name
        assert len(list((out / book.stem).glob("fig*.png"))) == len(images)
    nb = nbformat.read(out / BOOKS[0].name, as_version=4)
    text = "".join(o.get("text", "") + o.get("data", {}).get("text/plain", "")
                   for c in nb.cells for o in c.get("outputs", []))
    assert all(m in text for m in MODELS)
    tables = {c.source.split(" = ")[0]: o["data"]["text/plain"] for c in nb.cells if c.cell_type == "code"
              and c.source.startswith(("paired = ", "taxa = ")) for o in c.outputs if o.output_type == "execute_result"}
    # the paired bootstrap: every model with its difference to the best and that difference's interval
    assert all(k in tables["paired"] for k in ("diff_vs_best", "ci_lo", "ci_hi", "verdict", "best", *MODELS))
    # per taxon: a column per class_name of the demo taxonomy with a scored species, then the overall macro AUC
    truth, classes = report.read_truth(demo_dir), report.read_classes(demo_dir)
    want = sorted({classes[sp] for sp in truth.columns[1:] if (truth[sp] > 0).any()})
    assert len(want) >= 2 and all(k in tables["taxa"] for k in (*want, "macro_auc", *MODELS))
    assert tables["taxa"].splitlines()[0].split() == [*want, "macro_auc"]
    assert "scored species per taxon: {" in text
