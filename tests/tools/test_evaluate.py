"""Per-taxon scores of `make evaluate` on a hand-made solution."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from vocalprint.tools.evaluate import NAMED, UNNAMED, evaluate, summary, teacher_groups


@pytest.fixture
def comp(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    pd.DataFrame({"primary_label": ["bird1", "bird2", "bug1"],
                  "scientific_name": ["Parus major", "Pica pica", "Gryllus campestris"],
                  "common_name": ["Great Tit", "Magpie", "Field Cricket"],
                  "class_name": ["Aves", "Aves", "Insecta"]}).to_csv(data / "taxonomy.csv", index=False)
    ids = [f"s1_{5 * (i + 1)}" for i in range(6)]
    y = np.array([[1, 0, 1], [0, 1, 0], [1, 0, 0], [0, 0, 1], [0, 1, 1], [0, 0, 0]], float)
    pd.concat([pd.DataFrame({"row_id": ids}), pd.DataFrame(y, columns=["bird1", "bird2", "bug1"])],
              axis=1).to_csv(data / "solution.csv", index=False)
    p = y.copy()
    p[:, 2] = 1 - y[:, 2]  # the insect ranked exactly backwards
    sub = tmp_path / "sub" / "submission.csv"
    sub.parent.mkdir()
    pd.concat([pd.DataFrame({"row_id": ids}), pd.DataFrame(p, columns=["bird1", "bird2", "bug1"])],
              axis=1).to_csv(sub, index=False)
    (sub.parent / "timing.json").write_text(json.dumps({"model": "m", "elapsed_s": 1.0}))
    return data, sub


LABELS = [("Parus major", "Great Tit"), ("Pica pica", "Eurasian Magpie"), ("Gryllus pennsylvanicus", "Cricket")]


def test_evaluate_writes_auc_per_class_and_per_teacher_group(comp, tmp_path):
    data, sub = comp
    res = evaluate(data, sub, "m", tmp_path / "art", labels=LABELS)
    assert res["per_species"] == {"bird1": 1.0, "bird2": 1.0, "bug1": 0.0}
    assert res["macro_auc"] == pytest.approx(2 / 3)
    assert res["per_class"] == {"Aves": 1.0, "Insecta": 0.0}
    assert res["per_teacher"] == {NAMED: 1.0, UNNAMED: 0.0}
    saved = json.loads((tmp_path / "art" / "metrics" / "m.json").read_text())
    assert saved["per_class"] == res["per_class"] and saved["per_teacher"] == res["per_teacher"]
    assert (tmp_path / "art" / "metrics" / "m.csv").is_file()
    assert "Aves 1.0000" in summary(res) and "Insecta 0.0000" in summary(res)


def test_teacher_groups_match_scientific_names_only(comp):
    tax = pd.read_csv(comp[0] / "taxonomy.csv")
    groups = teacher_groups(tax, LABELS)
    assert groups == {"bird1": NAMED, "bird2": NAMED, "bug1": UNNAMED}
    # a common-name match alone does not count as named by the teacher
    assert teacher_groups(tax, [("Parus majorr", "Great Tit")])["bird1"] == UNNAMED


def test_a_taxonomy_without_classes_gives_no_class_split(comp, tmp_path):
    data, sub = comp
    pd.read_csv(data / "taxonomy.csv").drop(columns=["class_name"]).to_csv(data / "taxonomy.csv", index=False)
    res = evaluate(data, sub, "m", tmp_path / "art", labels=LABELS)
    assert res["per_class"] == {} and res["per_teacher"]
