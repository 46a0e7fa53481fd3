"""report.py on small synthetic arrays and artifact folders: the numbers behind the notebooks."""
from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from vocalprint.core import artifacts as A  # noqa: E402
from vocalprint.tools import bench, report  # noqa: E402
from vocalprint.config import TokensConfig  # noqa: E402
from vocalprint.core.metrics import macro_auc  # noqa: E402


def _scored(n_files: int, *, seed: int = 0, n_species: int = 3, noise: float = 0.8):
    """Truth and scores of ``n_files`` one-minute soundscapes (12 windows each); scores = truth + noise."""
    rng = np.random.default_rng(seed)
    ids = [f"ss{f:03d}_{5 * (w + 1)}" for f in range(n_files) for w in range(12)]
    sp = [f"sp{j}" for j in range(n_species)]
    y = (rng.random((len(ids), n_species)) < 0.25).astype(int)
    y[0] = 1  # every species has a positive
    y[1] = 0
    s = np.clip(y + rng.normal(0, noise, y.shape), -3, 4)
    truth = pd.DataFrame(y, columns=sp)
    truth.insert(0, "row_id", ids)
    scores = pd.DataFrame(1 / (1 + np.exp(-s)), columns=sp)
    scores.insert(0, "row_id", ids)
    return truth, scores


def test_bootstrap_ci_contains_estimate_and_narrows_with_more_soundscapes():
    t_small, s_small = _scored(5)
    t_big, s_big = _scored(80)
    a1, lo1, hi1 = report.bootstrap_ci(t_small, s_small, n=200)
    a2, lo2, hi2 = report.bootstrap_ci(t_big, s_big, n=200)
    assert a1 == pytest.approx(macro_auc(t_small, s_small)[0])
    assert lo1 <= a1 <= hi1 and lo2 <= a2 <= hi2
    assert hi2 - lo2 < 0.5 * (hi1 - lo1)  # 16x the files: about a quarter of the width


def test_rank_auc_and_bootstrap_match_the_metrics_module():
    from vocalprint.core.metrics import bootstrap_auc, macro_auc_arrays

    t, s = _scored(7, seed=2, n_species=4)
    s.iloc[:10, 1:] = 0.5  # ties
    y, p = t.iloc[:, 1:].to_numpy(), s.iloc[:, 1:].to_numpy()
    assert report.macro_auc_ranks(y, p) == pytest.approx(macro_auc_arrays(y, p))
    assert np.isnan(report.macro_auc_ranks(np.zeros((4, 2)), np.ones((4, 2))))
    _, lo, hi = report.bootstrap_ci(t, s, n=40, seed=5)
    groups = pd.Series(report.soundscape_ids(t["row_id"]))
    assert (lo, hi) == pytest.approx(bootstrap_auc(t, s, groups=groups, n=40, seed=5))


def test_bootstrap_ci_is_reproducible_and_independent_of_score_row_order():
    t, s = _scored(8, seed=3)
    shuffled = s.sample(frac=1.0, random_state=1)
    aligned = report.read_scores(shuffled, t)
    assert report.bootstrap_ci(t, s, n=50) == report.bootstrap_ci(t, aligned, n=50)


def test_row_id_parsing():
    ids = ["dev_ss000_5", "dev_ss000_60", "a_b_c_10"]
    assert list(report.soundscape_ids(ids)) == ["dev_ss000", "dev_ss000", "a_b_c"]
    assert list(report.end_seconds(ids)) == [5, 60, 10]


def test_per_species_table_is_sorted_worst_first_with_positives():
    truth = pd.DataFrame({"row_id": ["x_5", "x_10", "x_15"], "a": [1, 0, 1], "b": [0, 1, 0], "c": [1, 1, 0]})
    entries = [{"model": "m1", "per_species": {"a": 0.9, "b": 0.2, "c": 0.6}},
               {"model": "m2", "per_species": {"a": 0.7, "b": 0.4, "c": 0.5}}]
    per = report.per_species_table(entries, truth)
    assert list(per.index) == ["b", "c", "a"]
    assert per["mean_auc"].is_monotonic_increasing
    assert per.loc["a", "n_pos"] == 2 and per.loc["b", "n_pos"] == 1


def test_window_errors_mean_positive_error_is_one_minus_auc():
    t, s = _scored(10, seed=1, noise=1.5)
    err = report.window_errors(t, s)
    per = macro_auc(t, s)[1]
    for sp, g in err.groupby("species"):
        assert 1 - g.loc[g["label"] == 1, "error"].mean() == pytest.approx(per[sp])
        assert ((g["error"] >= 0) & (g["error"] <= 1)).all()
    se = report.species_errors(err)
    assert se["auc"].is_monotonic_increasing
    worst = report.worst_windows(err, n=2)
    assert list(worst["kind"]) == ["missed"] * 2 + ["false alarm"] * 2
    assert (worst["error"] > 0).all()
    top_miss = err[err["kind"] == "missed"]["error"].max()
    assert worst.iloc[0]["error"] == top_miss


def test_worst_windows_skips_perfectly_ranked_windows():
    truth = pd.DataFrame({"row_id": ["x_5", "x_10", "x_15", "x_20"], "a": [1, 0, 0, 1]})
    scores = pd.DataFrame({"row_id": truth["row_id"], "a": [0.9, 0.1, 0.2, 0.8]})
    err = report.window_errors(truth, scores)
    assert (err["error"] == 0).all()
    assert report.worst_windows(err).empty
    assert report.species_errors(err)["worst_miss"].isna().all()


def test_pareto_keeps_only_undominated_models():
    pts = [(10.0, 0.8), (20.0, 0.7), (5.0, 0.6), (30.0, 0.9)]
    assert bench.pareto(pts) == [2, 0, 3]


def test_token_entropy_uniform_is_log2_k_and_peaked_is_lower():
    k = 64
    uniform = np.full(k, 10)
    peaked = np.ones(k)
    peaked[3] = 1000
    assert report.entropy_bits(uniform) == pytest.approx(np.log2(k))
    assert report.entropy_bits(peaked) < 1.0
    assert report.entropy_bits(np.zeros(k)) == 0.0
    assert report.entropy_bits(np.array([0, 5, 0])) == 0.0


def test_species_token_counts_and_usage():
    seq = np.array([0, 0, 0, 1, 2, 3, 4, 5, 6, 7], np.uint16)
    index = pd.DataFrame({"name": ["train_audio/a/1.ogg", "train_audio/b/1.ogg", "train_soundscapes/x.ogg"],
                          "offset": [0, 3, 8], "n_frames": [3, 5, 2]})
    species, counts = report.species_token_counts(seq, index, {"train_audio/a/1.ogg": "a",
                                                               "train_audio/b/1.ogg": "b"}, k=8)
    assert species == ["a", "b"] and counts.shape == (2, 8)
    assert list(counts[0]) == [3, 0, 0, 0, 0, 0, 0, 0] and counts[1].sum() == 5
    usage = report.token_usage(species, counts)
    assert list(usage["species"]) == ["a", "b"]  # a uses one token: entropy 0
    assert usage.iloc[0]["entropy_bits"] == 0 and usage.iloc[1]["perplexity"] == pytest.approx(5)
    assert usage.attrs["equal_frames"] == 3 and usage.iloc[1]["entropy_eq_bits"] == pytest.approx(np.log2(3))
    assert report.token_counts(seq, 8).sum() == len(seq)


def test_subsampled_entropy_removes_the_sample_size_advantage():
    rng = np.random.default_rng(0)
    small = np.bincount(rng.integers(0, 512, 300), minlength=512)
    big = np.bincount(rng.integers(0, 512, 3000), minlength=512)  # same distribution, 10x the frames
    assert report.entropy_bits(big) > report.entropy_bits(small) + 0.5
    assert report.subsampled_entropy(big, 300) == pytest.approx(report.entropy_bits(small), abs=0.1)
    assert report.subsampled_entropy(small, 10_000) == report.entropy_bits(small)


def test_typical_tokens_prefer_species_specific_ones():
    counts = np.array([[50, 50, 0, 40], [50, 50, 60, 0]])
    assert report.typical_tokens(counts, 0, n=1)[0] == 3
    assert report.typical_tokens(counts, 1, n=1)[0] == 2
    why = report.pick_tokens(["a", "b"], counts, n_frequent=1, n_species=2)
    assert list(why.values())[0] == "most used" and {3, 2} <= set(why)


def test_cosine_neighbours_rank_by_angle_and_skip_self_and_unseen():
    v = np.array([[1, 0], [0.9, 0.1], [0, 1], [0, 0], [-1, 0]], np.float32)
    nb = report.cosine_neighbours(v, 0, n=10)
    assert list(nb["token"]) == [1, 2, 4]  # 3 is an unseen all-zero vector, 0 is itself
    assert nb["cosine"].is_monotonic_decreasing and nb["cosine"].iloc[0] > 0.99
    tab = report.neighbour_table(v, ["a"], np.array([[5, 50, 5, 0, 5]]), ["a"], n_typical=1, n=2)
    assert set(tab["token"]) == {1} and len(tab) == 2


def test_nearest_frames_returns_frames_of_that_token_nearest_first():
    rng = np.random.default_rng(0)
    centroid = np.zeros(4, np.float32)
    items = []
    for f in range(3):
        feats = rng.normal(0, 1, (50, 4)).astype(np.float32)
        tok = rng.integers(0, 5, 50)
        items.append((f"file{f}", feats, tok))
    ex = report.nearest_frames(items, token=2, centroid=centroid, n=6)
    assert len(ex) == 6 and ex["dist"].is_monotonic_increasing
    lookup = {name: (feats, tok) for name, feats, tok in items}
    for r in ex.itertuples():
        feats, tok = lookup[r.name]
        assert tok[r.frame] == 2
        assert r.dist == pytest.approx(np.linalg.norm(feats[r.frame]))
    all_d = np.concatenate([np.linalg.norm(f[t == 2], axis=1) for _, f, t in items])
    assert ex["dist"].max() == pytest.approx(np.sort(all_d)[5])
    capped = report.nearest_frames(items, token=2, centroid=centroid, n=6, per_file=1)
    assert capped["name"].is_unique and len(capped) == 3
    assert report.nearest_frames(items, token=99, centroid=centroid).empty


def test_pca_2d_finds_the_main_axis():
    rng = np.random.default_rng(0)
    x = np.c_[rng.normal(0, 10, 200), rng.normal(0, 1, 200), rng.normal(0, 0.1, 200)]
    xy, ratio = report.pca_2d(x)
    assert xy.shape == (200, 2) and ratio[0] > 0.95 and ratio[0] >= ratio[1]
    assert abs(np.corrcoef(xy[:, 0], x[:, 0])[0, 1]) > 0.99


def test_stage_config_reads_the_manifest_repr():
    cfg = TokensConfig(k=64, frame_norm="l2", median_sub=False)
    assert report.stage_config({"config": str(cfg)}, TokensConfig) == cfg
    assert report.stage_config({"config": "__import__('os')"}, TokensConfig) == TokensConfig()


_CLOCK = iter(range(10, 60))


def _stage(root, stage, key, *, upstream=None, data=None):
    """A complete stage folder; each one finishes a second after the one before."""
    work = A.partial_dir(A.stage_dir(root, stage, key))
    (work / "x.npy").write_bytes(b"x")
    info = {"stage": stage, "upstream": upstream}
    if data:
        info["data"] = str(data)
    out = A.finish(work, A.stage_dir(root, stage, key), info)
    m = json.loads((out / A.MANIFEST).read_text())
    m["finished"] = f"2026-01-01T00:00:{next(_CLOCK):02d}"
    A.write_json(out / A.MANIFEST, m)
    return out


def test_latest_chain_follows_upstream_and_prefers_this_data(tmp_path):
    root = tmp_path / "art"
    _stage(root, "mels", "m_other", data=tmp_path / "other")
    _stage(root, "mels", "m_mine", data=tmp_path / "mine")
    _stage(root, "tokens", "t_old", upstream=["m_mine"])
    _stage(root, "tokens", "t_new", upstream=["m_mine"])
    _stage(root, "tokens", "t_other", upstream=["m_other"])  # newest, but on other data
    A.partial_dir(A.stage_dir(root, "w2v", "w_partial"))  # incomplete: never chosen
    _stage(root, "w2v", "w1", upstream=["t_new"])
    _stage(root, "features", "f1", upstream=["w1"])
    chain = report.latest_chain(root, tmp_path / "mine")
    assert [c.path.name for c in chain.values()] == ["m_mine", "t_new", "w1", "f1"]
    assert chain["tokens"].candidates == 2 and "newest of 2" in str(chain["tokens"])
    with pytest.raises(A.ArtifactError, match="w2v: no complete folder built on tokens/t_other"):
        report.latest_chain(root, tmp_path / "other")


def test_load_metrics_keeps_only_this_data_with_matching_rows(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    truth, scores = _scored(2)
    truth.to_csv(data / "solution.csv", index=False)
    met = tmp_path / "art" / "metrics"
    met.mkdir(parents=True)
    for name, d, rows in (("good", data, scores), ("elsewhere", tmp_path / "x", scores),
                          ("stale", data, scores.head(5))):
        (met / f"{name}.json").write_text(json.dumps({"model": name, "data": str(d), "macro_auc": 0.7,
                                                      "per_species": {"sp0": 0.7},
                                                      "projection_700_min": {"2_cores": 3.0, "4_cores": 1.5}}))
        rows.to_csv(met / f"{name}.csv", index=False)
    (met / "nocsv.json").write_text(json.dumps({"model": "nocsv", "data": str(data)}))
    entries, notes = report.load_metrics(tmp_path / "art", data)
    assert [e["model"] for e in entries] == ["good"]
    assert len(notes) == 3
    tab = report.model_table(entries, truth, n_boot=20)
    assert tab.loc[0, "min_700_2_cores"] == 3.0 and tab.loc[0, "minutes_from"] == "evaluate"
    assert tab.loc[0, "ci_lo"] <= tab.loc[0, "macro_auc"] <= tab.loc[0, "ci_hi"]
    entries[0]["projection_700_min"] = {}
    tab = report.model_table(entries, truth, n_boot=5, bench={"good": {"projected_min_700_2_cores": 9.0,
                                                                          "projected_min_700_4_cores": 5.0}})
    assert tab.loc[0, "min_700_2_cores"] == 9.0 and tab.loc[0, "minutes_from"] == "bench"


def test_plots_return_figures():
    import matplotlib.pyplot as plt

    t, s = _scored(6)
    per = report.per_species_table([{"model": "m", "per_species": macro_auc(t, s)[1]}], t)
    tab = pd.DataFrame({"model": ["a", "b"], "macro_auc": [0.8, 0.7], "ci_lo": [0.7, 0.6], "ci_hi": [0.9, 0.8],
                        "min_700_2_cores": [10.0, 3.0]})
    counts = np.random.default_rng(0).integers(0, 50, (3, 16))
    figs = [report.plot_model_auc(tab), report.plot_per_species(per), report.plot_auc_vs_minutes(tab),
            report.plot_token_usage(counts.sum(0), report.token_usage(["a", "b", "c"], counts)),
            report.plot_embedding(np.random.default_rng(0).normal(size=(30, 2)), np.repeat(["a", "b", "c"], 10),
                                  ratio=np.array([0.5, 0.2]), max_species=2)]
    assert all(f.axes for f in figs)
    plt.close("all")


def _frame(ids, **cols):
    f = pd.DataFrame(cols)
    f.insert(0, "row_id", ids)
    return f


def _perfect_and_flawed():
    """Six soundscapes of four windows; ``perfect`` ranks every window right, ``flawed`` swaps one
    positive and one negative of species a in every soundscape (so it is worse in every resample)."""
    ids = [f"ss{f}_{5 * (w + 1)}" for f in range(6) for w in range(4)]
    a, b = np.tile([1, 0, 1, 0], 6), np.tile([0, 1, 0, 0], 6)
    truth = _frame(ids, a=a, b=b)
    perfect = _frame(ids, a=a * 0.9 + 0.05, b=b * 0.8 + 0.1)
    flawed = _frame(ids, a=np.tile([0.9, 0.6, 0.2, 0.1], 6), b=b * 0.7 + 0.2)
    return truth, perfect, flawed


def test_paired_diff_of_a_perfect_model_is_positive_and_excludes_zero():
    from vocalprint.core.metrics import macro_auc

    truth, perfect, flawed = _perfect_and_flawed()
    d, lo, hi = report.paired_diff(truth, perfect, flawed, n=100)
    assert d == pytest.approx(macro_auc(truth, perfect)[0] - macro_auc(truth, flawed)[0])
    assert d == pytest.approx(1 - (0.75 + 1) / 2)  # flawed: a 3/4 of pairs right, b perfect
    assert 0 < lo <= d <= hi
    d2, lo2, hi2 = report.paired_diff(truth, flawed, perfect, n=100)
    assert (d2, lo2, hi2) == pytest.approx((-d, -hi, -lo))


def test_paired_diff_matches_the_metrics_module():
    from vocalprint.core.metrics import paired_bootstrap_diff

    t, a = _scored(7, seed=2, n_species=4)
    _, b = _scored(7, seed=2, n_species=4, noise=1.6)  # same truth, noisier scores
    b.iloc[:10, 1:] = 0.5  # ties
    groups = pd.Series(report.soundscape_ids(t["row_id"]))
    got = report.paired_diff(t, a, b, groups=groups, n=40, seed=5)
    assert got == pytest.approx(paired_bootstrap_diff(t, a, b, groups=groups, n=40, seed=5))
    assert report.paired_diff(t, a, b, n=40, seed=5) == got  # default groups: the row_id stems


def test_paired_table_ranks_against_the_best_model():
    truth, perfect, flawed = _perfect_and_flawed()
    entries = [{"model": "flawed", "csv": flawed}, {"model": "perfect", "csv": perfect},
               {"model": "copy", "csv": perfect.copy()}]
    tab = report.paired_table(entries, truth, n_boot=100)
    assert list(tab["model"]) == ["perfect", "copy", "flawed"] and tab.attrs["best"] == "perfect"
    assert list(tab.columns) == ["model", "macro_auc", "diff_vs_best", "ci_lo", "ci_hi", "verdict"]
    best, copy, worse = (r for _, r in tab.iterrows())
    assert best["macro_auc"] == 1.0 and best["verdict"] == "best" and best["diff_vs_best"] == 0
    assert copy["verdict"] == "tie" and copy["ci_lo"] <= 0 <= copy["ci_hi"]  # the same scores
    assert worse["verdict"] == "worse" and worse["ci_lo"] <= worse["diff_vs_best"] <= worse["ci_hi"] < 0
    assert worse["diff_vs_best"] == pytest.approx(-0.125)
    one = report.paired_table(entries[:1], truth, n_boot=10)
    assert list(one["verdict"]) == ["best"]


def test_class_table_is_the_mean_auc_within_each_class(tmp_path):
    ids = ["x_5", "x_10", "x_15", "x_20"]
    truth = _frame(ids, a=[1, 0, 1, 0], b=[0, 1, 0, 1], c=[1, 1, 0, 0], d=[1, 0, 0, 0])
    scores = _frame(ids, a=[0.9, 0.1, 0.2, 0.3], b=[0.1, 0.9, 0.2, 0.8], c=[0.1, 0.2, 0.3, 0.4],
                    d=[0.5, 0.5, 0.1, 0.2])  # AUC by hand: a 3/4, b 1, c 0, d 2.5/3 (a tie counts half)
    (tmp_path / "taxonomy.csv").write_text("primary_label,class_name\na,Aves\nb,Aves\nc,Insecta\nd,Insecta\n")
    classes = report.read_classes(tmp_path)
    assert classes == {"a": "Aves", "b": "Aves", "c": "Insecta", "d": "Insecta"}
    entries = [{"model": "scored", "csv": scores},  # per-species AUC from the scores
               {"model": "json", "per_species": {"a": 1.0, "b": 1.0, "c": 0.5, "d": 0.7}}]
    tab = report.class_table(entries, truth, classes)
    assert list(tab.columns) == ["Aves", "Insecta", "macro_auc"] and list(tab.index) == ["json", "scored"]
    assert tab.loc["scored"].to_dict() == pytest.approx(
        {"Aves": (0.75 + 1) / 2, "Insecta": (0 + 2.5 / 3) / 2, "macro_auc": (0.75 + 1 + 0 + 2.5 / 3) / 4})
    assert tab.loc["json"].to_dict() == pytest.approx({"Aves": 1.0, "Insecta": 0.6, "macro_auc": 0.8})
    assert tab.attrs["n_species"] == {"Aves": 2, "Insecta": 2} and tab.attrs["n_pos"] == {"Aves": 4, "Insecta": 3}
    frame = pd.DataFrame({"primary_label": list("abcd"), "class_name": ["Aves"] * 2 + ["Insecta"] * 2})
    assert report.class_table(entries, truth, frame).equals(tab)
    partial = report.class_table(entries, truth, {"a": "Aves", "b": "Aves", "e": "Mammalia"})
    assert list(partial.columns) == ["Aves", "other", "macro_auc"]  # c, d: not in the taxonomy
    assert partial.attrs["n_species"] == {"Aves": 2, "Mammalia": 0, "other": 2}  # e: no positive window
    (tmp_path / "taxonomy.csv").write_text("primary_label,common_name\na,A\nb,B\nc,C\nd,D\n")
    assert report.read_classes(tmp_path) == {} and report.read_classes(tmp_path / "missing") == {}
    flat = report.class_table(entries, truth, report.read_classes(tmp_path))
    assert list(flat.columns) == ["all", "macro_auc"] and (flat["all"] == flat["macro_auc"]).all()


def test_comparison_plots_return_figures():
    import matplotlib.pyplot as plt

    truth, perfect, flawed = _perfect_and_flawed()
    entries = [{"model": "perfect", "csv": perfect}, {"model": "flawed", "csv": flawed}]
    figs = [report.plot_paired_diff(report.paired_table(entries, truth, n_boot=20)),
            report.plot_class_auc(report.class_table(entries, truth, {"a": "Aves", "b": "Insecta"})),
            report.plot_class_auc(report.class_table(entries, truth))]
    assert all(f.axes for f in figs)
    plt.close("all")
