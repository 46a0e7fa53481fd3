"""The model registry is the one list of models: the CLI, make help, bench and bundles read it;
the configuration is validated when loaded; `config show` prints it."""
from __future__ import annotations

import ast
import logging
import subprocess
import sys

import pytest

from conftest import REPO, run_env
from vocalprint import config as C
from vocalprint import models
from vocalprint.core.progress import LogProgress, progress_bar


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vocalprint", *args], env=run_env(), capture_output=True,
                          text=True, cwd=REPO, timeout=120)


def test_registry_entries_are_consistent():
    assert models.NAMES == tuple(models.MODELS) and len(set(models.NAMES)) == len(models.NAMES)
    assert set(models.BENCH_DEFAULT) <= set(models.NAMES) and "ensemble" not in models.BENCH_DEFAULT
    for name, spec in models.MODELS.items():
        assert spec.name == name and spec.family in ("tokens", "teacher", "student", "serving")
        assert spec.bundle in ("none", "tflite", "members")
    assert models.get("tokens-cnn").configure(C.Config()).distill.front == "tokens"
    assert models.get("perch-probe").configure(C.Config()).teacher.model == "perch"
    assert models.get("student").configure(C.Config()) == C.Config()
    with pytest.raises(C.ConfigError, match="unknown model 'nope'; choose from loudness"):
        models.get("nope")


def test_recommended_resolves_to_its_frozen_recipe(caplog):
    """MODEL=recommended is a fixed recipe: a user's submit.members/weights cannot change it, and
    the user is told so."""
    spec = models.get("recommended")
    assert spec.bundle == "members" and spec.file_max == 0.2
    user = C.override(C.override(C.Config(), "submit.members", "loudness,stsg-linear"), "submit.weights", "1,1")
    for cfg in (C.Config(), user):
        sub = spec.configure(cfg).submit
        assert sub.members == ("birdnet-zeroshot", "tokens-nb", "student-2s") and sub.weights == ("1", "0", "0")
        assert sub.weights_unnamed == ("0.5", "0.25", "0.25") and sub.combine == "mean"
        assert models.members_of(cfg, "recommended") == ("birdnet-zeroshot", "tokens-nb", "student-2s")
    # its student member: one network on the teacher's 2-s cache within a 1M-window budget, whatever
    # the user's student settings; BirdNET's own hop at test time is not the member's to change
    mine = C.override(C.override(C.Config(), "distill.members", "3"), "teacher.stride_s", "1")
    models._WARNED.clear()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="vocalprint.models"):
        s2 = models.get("student-2s").configure(mine)
        models.get("student-2s").configure(mine)
    assert (s2.teacher.stride_s, s2.distill.members, s2.distill.window_budget) == (2.0, 1, 1_000_000)
    # a setting the model overrules is named once; one left at the project default is not
    # (teacher.stride_s=1 is the default: nothing to tell)
    said = [r.getMessage() for r in caplog.records]
    assert said == ["model student-2s pins distill.members=1: your configuration's 3 is ignored for it "
                    "(a model that does not pin it, e.g. student or ensemble, takes any value)"]
    with caplog.at_level(logging.WARNING, logger="vocalprint.models"):
        spec.configure(user)
    assert any(r.getMessage().startswith("model recommended pins submit.members=birdnet-zeroshot,tokens-nb,"
                                         "student-2s: your configuration's loudness,stsg-linear is ignored")
               for r in caplog.records)
    assert s2.teacher.infer_stride_s == mine.teacher.infer_stride_s
    assert models.get("birdnet-zeroshot").configure(spec.configure(C.Config())).teacher.stride_s == 1.0
    assert models.members_of(user, "ensemble") == ("loudness", "stsg-linear")
    assert models.members_of(user, "tokens-nb") == ()
    # an ensemble of ensembles is refused before any work
    with pytest.raises(C.ConfigError, match="cannot be ensembles"):
        models.train(C.override(C.Config(), "submit.members", "recommended,tokens-nb"), None, None, "ensemble")


def test_a_variant_is_a_model_under_other_settings():
    name, cfg = models.variant(C.Config(), "birdnet-zeroshot@teacher.infer_stride_s=2@teacher.chunk_batch=1")
    assert name == "birdnet-zeroshot" and cfg.teacher.infer_stride_s == 2.0 and cfg.teacher.chunk_batch == 1
    assert models.variant(C.Config(), "tokens-nb") == ("tokens-nb", C.Config())
    with pytest.raises(C.ConfigError, match="not section.field=value"):
        models.variant(C.Config(), "tokens-nb@teacher.stride_s")
    with pytest.raises(C.ConfigError, match="unknown config key"):
        models.variant(C.Config(), "tokens-nb@teacher.nope=1")
    with pytest.raises(C.ConfigError, match="chunk_batch must be >= 1"):
        models.variant(C.Config(), "birdnet-zeroshot@teacher.chunk_batch=0")


def test_a_variant_list_keeps_list_values_whole():
    items = models.variant_items("loudness, tokens-nb@nb.views=logmel,pcen,subbands@nb.k=512,student,")
    assert items == ["loudness", "tokens-nb@nb.views=logmel,pcen,subbands@nb.k=512", "student"]
    name, cfg = models.variant(C.Config(), items[1])
    assert name == "tokens-nb" and cfg.nb.views == ("logmel", "pcen", "subbands") and cfg.nb.k == 512
    # a piece that is no model name and follows no variant is an item (variant() then names it)
    assert models.variant_items("tokens-nb,nope") == ["tokens-nb", "nope"]
    with pytest.raises(C.ConfigError, match="unknown model 'nope'"):
        models.variant(C.Config(), "nope")


def test_no_other_module_lists_model_names():
    """A tuple, list or set literal holding two or more model names anywhere but models.py is a
    second registry."""
    names = set(models.NAMES)
    offenders = []
    for path in (REPO / "src" / "vocalprint").rglob("*.py"):
        if path.name == "models.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
                hits = [e.value for e in node.elts if isinstance(e, ast.Constant) and e.value in names]
                if len(hits) >= 2:
                    offenders.append(f"{path.relative_to(REPO)}:{node.lineno} {hits}")
    assert not offenders, offenders


def test_cli_lists_and_validates_models():
    r = _cli("models")
    assert r.returncode == 0 and r.stdout.strip() == models.help_table().strip()
    r = _cli("submit", "--model", "nope", "--data", str(REPO / "no-such-data"))
    assert r.returncode == 2 and "choose from loudness" in r.stderr
    r = _cli("submit", "--model", "ensemble", "--set", "submit.members=tokens-nb,nope", "--data", str(REPO / "x"))
    assert r.returncode == 2 and "unknown model 'nope'" in r.stderr  # before any work


def test_make_help_lists_targets_variables_and_models():
    r = subprocess.run(["make", "-s", "-C", str(REPO), "help"], capture_output=True, text=True, timeout=120,
                       env=run_env())
    assert r.returncode == 0, r.stderr
    out = r.stdout
    for target in ("submit", "evaluate", "kaggle", "clean-all"):
        assert f"\n  {target} " in out
    for var in ("DATA_DIR", "MODEL", "BUDGET_MIN", "BUNDLES", "KAGGLE_USER"):
        assert f"\n  {var} " in out
    if "run make venv first" not in out:
        for name in models.NAMES:
            assert f"\n  {name} " in out


@pytest.mark.parametrize("setting,allowed", [
    ("submit.combine=foo", "mean, logit"), ("mel.frontend=cqt", "logmel, pcen"),
    ("distill.token_body=3d", "1d, 2d"), ("nb.views=logmel,mfcc", "logmel, pcen, pcen1, subbands"),
    ("teacher.variant=int4", "fp32, float16"), ("run.executor=spark", "local, dask-local, dask"),
])
def test_enum_values_are_validated_when_loaded(setting, allowed):
    with pytest.raises(C.ConfigError, match=allowed):
        C.load(None, [setting])


def test_config_show_prints_the_resolved_config_and_refuses_bad_values():
    import yaml

    r = _cli("config", "show", "--model", "tokens-cnn", "--set", "tokens.k=77")
    assert r.returncode == 0, r.stderr
    shown = yaml.safe_load(r.stdout)
    assert shown["tokens"]["k"] == 77 and shown["distill"]["front"] == "tokens"
    assert shown["submit"]["model"] == "tokens-cnn"
    r = _cli("config", "show", "--set", "submit.combine=foo")
    assert r.returncode == 2 and "choose from mean, logit" in r.stderr


def test_progress_logs_at_least_every_interval_off_a_terminal(caplog):
    t = [0.0]
    bar = LogProgress(10, desc="teacher cache", every_s=30.0, clock=lambda: t[0])
    with caplog.at_level(logging.INFO, logger="vocalprint.progress"):
        for i in range(10):
            t[0] += 10.0  # 10 s per item
            bar.update()
        bar.set_postfix(loss=0.5)
        bar.close()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 4  # after 30, 60, 90 s, and the closing line
    assert lines[0].startswith("teacher cache: 3/10 (30 %), 30 s elapsed, ETA 70 s")
    assert lines[-1].startswith("teacher cache: 10/10 (100 %)") and "loss=0.5" in lines[-1]
    assert isinstance(progress_bar(3, desc="x"), LogProgress)  # pytest's stderr is not a terminal


def test_make_clean_keeps_the_teacher_cache_and_clean_all_removes_it(tmp_path):
    art = tmp_path / "art"
    for d in ("teacher", "teacher-model", "tmixes", "mels", "tokens", "student", "metrics"):
        (art / d / "abc").mkdir(parents=True)
    (art / "README.md").write_text("kept")
    common = ["make", "-s", "-C", str(REPO), f"ARTIFACTS={art}", f"DEMO_DIR={tmp_path / 'demo'}",
              f"SUBMISSION={tmp_path / 'sub.csv'}"]
    r = subprocess.run(common + ["clean"], capture_output=True, text=True, timeout=60, env=run_env())
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in art.iterdir()) == ["README.md", "teacher", "teacher-model", "tmixes"]
    r = subprocess.run(common + ["clean-all"], capture_output=True, text=True, timeout=60, env=run_env())
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in art.iterdir()) == ["README.md"]


def test_make_kaggle_refuses_to_bundle_a_model_trained_on_the_demo_set(tmp_path):
    r = subprocess.run(["make", "-s", "-C", str(REPO), "kaggle", "DATA_DIR=data/demo", f"ARTIFACTS={tmp_path / 'art'}"],
                       capture_output=True, text=True, timeout=120, env=run_env())
    assert r.returncode != 0 and "DATA_DIR is the demo set" in r.stderr
    assert not (tmp_path / "art").exists()  # refused before anything was trained or bundled


def test_a_students_exported_precision_is_a_registry_field():
    """The student predictors pick their network file by the registry's ``precision``, not the name."""
    assert {n: s.precision for n, s in models.MODELS.items() if s.family == "student"} == {
        "student": "int8", "student-fp32": "fp32", "student-2s": "int8", "tokens-cnn": "int8"}
    with pytest.raises(ValueError, match="precision"):
        models.ModelSpec("x", "student", "", (), precision="fp16")


def test_what_a_teacher_model_outputs_is_a_registry_field():
    """Zero-shot or probe comes from the registry's ``kind``, not from the model's name."""
    assert {n: s.kind for n, s in models.MODELS.items() if s.family == "teacher"} == {
        "birdnet-zeroshot": "zeroshot", "birdnet-probe": "probe", "perch-zeroshot": "zeroshot", "perch-probe": "probe"}
    assert all(s.kind == "" for s in models.MODELS.values() if s.family != "teacher")
    with pytest.raises(ValueError, match="kind"):
        models.ModelSpec("x", "teacher", "", ())
    with pytest.raises(ValueError, match="kind"):
        models.ModelSpec("x", "student", "", (), kind="probe")
