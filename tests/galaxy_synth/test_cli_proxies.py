import json

import numpy as np
import pandas as pd
import pytest

from galaxy_synth.cli import main
from proxies.composite import CompositeProxy
from proxies.guard import guarded
from synthesis.search.study import shipped_calibration

DEFAULT_CALIBRATION = shipped_calibration()

TINY = ["--size", "32", "--synthetic-n", "200", "--max-samples", "80", "--val-subset", "40", "--max-params", "150000",
        "--no-progress", "--epochs", "1"]


def test_correlate_table_writes_report_weights_and_plots(tmp_path, capsys):
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"m1": rng.normal(size=80), "m2": rng.normal(size=80), "name": ["x"] * 80})
    df["val_accuracy"] = 80 + 3 * df["m1"] + rng.normal(size=80)
    df.to_csv(tmp_path / "t.csv", index=False)
    code = main(["correlate", "--table", str(tmp_path / "t.csv"), "--target", "val_accuracy", "--repeats", "2",
                 "--results", str(tmp_path / "out")])
    assert code == 0
    report = json.loads((tmp_path / "out" / "tables" / "t" / "correlation_report.json").read_text())
    assert report["composite_spearman_cv"] > 0.8 and report["features"] == ["m1", "m2"]
    proxy = CompositeProxy.load(tmp_path / "out" / "tables" / "t" / "proxy_weights.json")
    assert proxy.provenance["n_ground_truth"] == 80 and report["calibration_hash"] == proxy.calibration_hash
    for png in ("correlation_scatter.png", "correlation_metrics.png", "proxy_weights.png"):
        assert (tmp_path / "out" / "tables" / "t" / png).stat().st_size > 2000
    assert "composite" in capsys.readouterr().out


def test_correlate_bad_inputs_are_one_line(tmp_path, capsys):
    assert main(["correlate", "--table", str(tmp_path / "none.csv"), "--results", str(tmp_path / "o")]) == 2
    pd.DataFrame({"a": [1, 2]}).to_csv(tmp_path / "t.csv", index=False)
    assert main(["correlate", "--table", str(tmp_path / "t.csv"), "--target", "acc", "--results", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "table not found" in err[0] and "no target column 'acc'" in err[1]
    assert not (tmp_path / "o").exists()


def test_outside_the_calibrations_trial_settings_the_default_objective_falls_back_and_says_why(tmp_path, capsys):
    results = tmp_path / "r"
    assert main(["synth", "--results", str(results), "--trials", "1", *TINY]) == 0  # 1-epoch trials on 80 images
    err = capsys.readouterr().err
    assert "was not fitted on trials like these" in err and "epochs 1 (fitted on 2)" in err and "Optimising train_acc" in err
    import optuna

    attrs = optuna.load_study(study_name="galaxy-synth", storage=f"sqlite:///{results / 'study.db'}").user_attrs["galaxy_synth"]
    assert attrs["objective"] == "train_acc" and "not fitted on trials like these" in attrs["objective_note"]
    table = pd.read_csv(results / "studies" / "galaxy-synth" / "trials_proxy_metrics.csv")
    assert set(table["objective_is"]) == {"train_acc"}  # the CSV names what its score is


def test_other_data_with_the_calibrations_trial_settings_keeps_the_composite_with_a_note(tmp_path, capsys):
    same_settings = ["--size", "32", "--max-mflops", "40", "--epochs", "2", "--max-samples", "2000", "--synthetic-n", "150",
                     "--val-subset", "40", "--max-params", "150000", "--no-progress", "--precision", "fp32"]
    assert main(["synth", "--results", str(tmp_path / "r"), "--trials", "1", *same_settings]) == 0
    err = capsys.readouterr().err
    assert "objective composite" in err and "was fitted on other data (data 'embedded'" in err


def test_composite_objective_study_then_rank_with_a_newer_calibration(tmp_path, capsys):
    results = tmp_path / "r"
    assert main(["synth", "--results", str(results), "--trials", "3", "--objective", "composite", *TINY]) == 0
    assert "its scores are extrapolations here" in capsys.readouterr().err  # kept as asked, with a warning
    import optuna

    study = optuna.load_study(study_name="galaxy-synth", storage=f"sqlite:///{results / 'study.db'}")
    attrs = study.user_attrs["galaxy_synth"]
    shipped = json.loads(DEFAULT_CALIBRATION.read_text())
    assert attrs["objective"] == "composite" and attrs["calibration"]["hash"] == shipped["hash"]  # the shipped default
    values_before = [t.value for t in study.trials]
    t = next(t for t in study.trials if t.state.name == "COMPLETE")
    for key in ("zc_synflow", "zc_naswot", "zc_jacov", "zc_snip", "zc_grad_norm", "train_loss_cv", "gap"):
        assert key in t.user_attrs["metrics"]
    assert t.value == pytest.approx(guarded(t.user_attrs["proxy_score"], t.user_attrs["collapsed"]))

    # a newer calibration: rescoring uses it, the values TPE saw stay
    table = pd.read_csv(results / "studies" / "galaxy-synth" / "trials_proxy_metrics.csv")
    table["acc"] = np.arange(len(table), dtype=float)
    new = CompositeProxy(features=["val_acc", "train_loss"], name="newer").fit(table, "acc")
    new.save(results / "proxy_weights.json")
    assert main(["rank", "--results", str(results)]) == 0
    out = capsys.readouterr().out
    assert "'newer'" in out
    ranked = pd.read_csv(results / "studies" / "galaxy-synth" / "trials_proxy_metrics.csv")
    done = ranked[ranked["state"] == "COMPLETE"]
    assert len(done) == 3 and np.allclose(done["proxy_score"], [guarded(v, c) for v, c in zip(new.predict(done), done["collapsed"])])
    assert ranked["proxy_score"].isna().sum() == len(ranked) - 3  # pruned trials have no score
    assert list(done["proxy_score"]) == sorted(done["proxy_score"], reverse=True)
    assert list(ranked.index[ranked["state"] == "COMPLETE"]) == [0, 1, 2]  # ranked first
    assert [t.value for t in optuna.load_study(study_name="galaxy-synth", storage=f"sqlite:///{results / 'study.db'}").trials] == values_before

    # resuming keeps the calibration the study started with, even though a newer one exists now
    assert main(["synth", "--results", str(results), "--trials", "4", "--objective", "composite", *TINY]) == 0
    study = optuna.load_study(study_name="galaxy-synth", storage=f"sqlite:///{results / 'study.db'}")
    last = study.trials[-1]
    frozen = CompositeProxy.from_dict(attrs["calibration"]).predict(pd.DataFrame([last.user_attrs["metrics"]]))[0]
    assert last.value == pytest.approx(guarded(frozen, last.user_attrs["collapsed"]))




def test_rank_without_a_study_is_one_line(tmp_path, capsys):
    assert main(["rank", "--results", str(tmp_path)]) == 2
    assert "no study database" in capsys.readouterr().err
