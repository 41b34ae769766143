"""Every benchmark script starts (its --help) from the installed package: no sys.path patching, no stale imports."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p for p in (ROOT / "bench").glob("*.py") if not p.name.startswith("_"))


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.name for p in SCRIPTS])
def test_the_bench_script_starts(script):
    assert "sys.path.insert" not in script.read_text()
    res = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120,
                         cwd=ROOT / "bench")
    assert res.returncode == 0, res.stderr[-1500:]


def test_the_default_calibration_records_its_leave_one_study_out_figures_without_changing(tmp_path):
    import importlib.util
    import json
    import shutil

    spec = importlib.util.spec_from_file_location("make_default_calibration", ROOT / "bench" / "make_default_calibration.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    calibration = shutil.copy(ROOT / "proxies" / "calibrations" / "default.json", tmp_path / "default.json")
    before = json.loads(Path(calibration).read_text())
    label = f"shipped default {before['name']} (not refit)"
    score = {"spearman": 0.5, "spearman_ci95": [0.2, 0.7], "regret_at_1": 0.01, "regret_at_1_ci95": [0.0, 0.03],
             "one_se": 0.012, "top_k": 5, "top_k_recall": 0.4, "top_k_recall_ci95": [0.0, 0.8]}
    report = {"n_rows": 10, "tables": ["a.csv"], "transfer": {
        "protocol": "leave one study group out", "shipped_candidate": {"candidate": "three strongest"},
        "held_out_sets": [{"set": "s0", "architectures": 10, "in_sample": [], "scores": {label: score}}],
        "means": {label: {"mean_spearman": 0.5}, "train_loss alone": {"mean_spearman": 0.6}}}}
    (tmp_path / "report.json").write_text(json.dumps(report))
    module.record_transfer(Path(calibration), tmp_path / "report.json")
    after = json.loads(Path(calibration).read_text())
    recorded = after["provenance"]["leave_one_study_out"]
    assert recorded["this_calibration"] == {"mean_spearman": 0.5} and recorded["per_held_out_set"][0]["regret_at_1_ci95"] == [0.0, 0.03]
    assert recorded["every_scorer_mean"] == {"train_loss alone": {"mean_spearman": 0.6}}
    assert {k: v for k, v in after.items() if k != "provenance"} == {k: v for k, v in before.items() if k != "provenance"}


def test_the_anytime_benchmark_has_a_calibrating_arm_and_the_four_data_sets():
    import importlib.util

    from synthesis.search import CalibratingSearch, strategy_for
    from synthesis.settings import check_ranges

    spec = importlib.util.spec_from_file_location("anytime", ROOT / "bench" / "anytime.py")
    anytime = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(anytime)
    assert {"gz1", "rings", "gz2", "hsc"} <= set(anytime.DATA)
    for folder, key in {"gz2_spiral_dev": "gz2", "hsc_gc1_interacting": "hsc", "gz1_dev": "gz1", "gz2": "gz2"}.items():
        assert anytime.data_key(folder) == key  # --data takes the key or the shared folder's name
    for dataset in anytime.DATA:
        settings = anytime.settings_for(dataset, "tpe-calibrating", 0, "/tmp/unused")
        check_ranges(settings)
        assert settings.study == f"anytime-{dataset}-tpe-calibrating-s0" and settings.fidelities == "2,6,18"
        assert isinstance(strategy_for(settings), CalibratingSearch)
        assert Path(settings.data).parent == anytime.SHARED
        if anytime.SHARED.is_dir():  # a checkout beside the shared data sets (not a worktree elsewhere)
            assert (Path(settings.data) / "labels.csv").is_file(), settings.data


def test_the_latency_model_check_runs_quick(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("latency_model", ROOT / "bench" / "latency_model.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    report = bench.main(["--quick", "--out", str(tmp_path)])
    assert len(report["rows"]) == 4 and (tmp_path / "latency_model.png").stat().st_size > 1000
    assert json.loads((tmp_path / "latency_model.json").read_text())["summary"].keys() == {"batch 1", "batch 8"}
    for row in report["rows"]:
        assert row["predicted_ms_b1"] > 0 and row["measured_ms_b8"] > 0
    assert all(-1 <= s["spearman_predicted_vs_measured"] <= 1 and s["median_abs_pct_error"] >= 0
               for s in report["summary"].values())


def test_the_anytime_benchmark_pairs_two_arms_on_the_same_test_galaxies():
    import importlib.util

    spec = importlib.util.spec_from_file_location("anytime", ROOT / "bench" / "anytime.py")
    anytime = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(anytime)
    rng = np.random.default_rng(0)
    shared = (rng.random(800) < 0.85).astype(float)  # both picks right and wrong on most of the same galaxies
    better = shared.copy()
    better[np.flatnonzero(shared == 0)[:24]] = 1.0  # a gets 24 more galaxies right, 3 points: under 1 binomial SE...
    rows = [{"strategy": "tpe-default", "search_seed": s, "budget_minutes": 5.0, "test_correct": better.tolist()}
            for s in (0, 1)] + [{"strategy": "random", "search_seed": s, "budget_minutes": 5.0,
                                  "test_correct": shared.tolist()} for s in (0, 1)]
    (c,) = anytime.galaxy_paired_comparisons(rows, [5.0], [0, 1])
    assert (c["a"], c["b"], c["n_seeds"], c["test_galaxies"]) == ("tpe-default", "random", 2, 800)
    assert c["mean_a_minus_b"] == pytest.approx(24 / 800)
    assert c["ci95"][0] > 0  # ...and still separated, paired on the galaxies
    assert "tpe-default − random" in anytime.galaxy_table({"paired_by_galaxy": [c]})
    assert anytime.galaxy_paired(rows, "tpe-calibrating", "random", 5.0, [0, 1]) is None  # an arm not run


def test_the_votes_benchmark_binarises_each_question_to_one_vote_for_its_majority():
    import importlib.util

    import numpy as np

    spec = importlib.util.spec_from_file_location("votes_bench", ROOT / "bench" / "votes.py")
    votes = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(votes)
    counts = np.array([[30.0, 10.0, 2.0, 5.0, 1.0], [4.0, 36.0, 0.0, 0.0, 0.0]])
    assert votes.majority_votes(counts, [2, 3]).tolist() == [[1, 0, 0, 1, 0], [0, 1, 0, 0, 0]]  # unasked stays 0
    diff = votes.paired(np.array([0.1, 0.2, np.nan, 0.4]), np.array([0.2, 0.2, 0.3, 0.2]))
    assert diff["n"] == 3 and np.isclose(diff["mean"], (-0.1 + 0 + 0.2) / 3) and diff["lo"] <= diff["mean"] <= diff["hi"]
