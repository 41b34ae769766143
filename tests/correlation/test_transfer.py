"""Leave one study group out: what a calibration does on a study it never saw."""

import numpy as np
import pandas as pd
import pytest

from correlation import transfer
from correlation.calibrate import FEATURES
from correlation.transfer import study_groups
from correlation.transfer import evaluation_sets, leave_one_group_out, set_scores

SIGNALS = [f for f in FEATURES if f not in ("train_loss",)][:6]


def ground_truth(studies: dict[str, int], seed: int = 0, shift: float = 0.3) -> pd.DataFrame:
    """Rows as correlate exports them, two seeds each: within every study accuracy follows -train_loss,
    but each study sits at its own level of train_loss (the shift a calibration must survive)."""
    rng = np.random.default_rng(seed)
    rows = []
    for k, (study, n) in enumerate(studies.items()):
        quality = rng.normal(size=n)
        for i in range(n):
            for gt_seed in (0, 1):
                acc = 0.8 + 0.03 * quality[i] + 0.003 * rng.normal()
                row = {"dataset": f"data{k % 2}", "study": study, "trial": i, "spec_hash": f"{study}-{i}", "full_epochs": 15,
                       "gt_seed": gt_seed, "accuracy": acc, "balanced_accuracy": acc - 0.1, "macro_f1": acc - 0.2,
                       "test_loss": 1 - acc, "full_train_seconds": 1.0, "n_test": 800,
                       "train_loss": 1.0 + shift * k - 0.1 * quality[i]}
                row.update({f: rng.normal() for f in SIGNALS})
                rows.append(row)
    return pd.DataFrame(rows)


def test_twins_share_a_group_and_small_studies_are_judged_together():
    rows = ground_truth({"pool": 8, "other": 7, "pick-a-s0": 1, "pick-a-s1": 1, "pick-b-s0": 2}).drop_duplicates(["study", "trial"])
    twin = rows[rows["study"] == "pool"].assign(study="pool-bf16")  # the same architectures, measured another way
    rows = pd.concat([rows, twin], ignore_index=True)
    rows["dataset"] = "gz1"
    groups = study_groups(rows)
    assert groups[rows["study"] == "pool"].iloc[0] == groups[rows["study"] == "pool-bf16"].iloc[0]
    assert groups[rows["study"] == "other"].iloc[0] == "other"
    picks = set(groups[rows["study"].str.startswith("pick")])
    assert len(picks) == 1 and "picks (3 studies)" in picks.pop()
    sets = evaluation_sets(rows, groups)
    assert sorted(name for name, _, _ in sets)[:2] == ["gz1: pick picks (3 studies)", "other"]
    assert {"pool", "pool-bf16"} <= {name for name, _, _ in sets}  # each twin judged alone, in one group


def test_set_scores_say_regret_at_1_against_one_standard_error():
    y = np.array([0.80, 0.85, 0.82, 0.90])
    s = set_scores(np.array([4.0, 3.0, 2.0, 1.0]), y, n_test=400)  # ranked first: the 0.80
    assert s["regret_at_1"] == pytest.approx(0.10) and s["one_se"] == pytest.approx(np.sqrt(0.9 * 0.1 / 400))
    assert not s["regret_within_1se"] and s["top_k"] == 2 and s["top_k_recall"] == 0.5  # of 0.90 and 0.85, the 0.85
    best = set_scores(y, y, n_test=400)
    assert best["spearman"] == pytest.approx(1.0) and best["regret_at_1"] == 0 and best["top_k_recall"] == 1.0


def test_nothing_of_the_held_out_group_is_ever_fitted_on(monkeypatch):
    rows = ground_truth({"s0": 10, "s1": 10, "s2": 10}).groupby(["study", "trial"], as_index=False).first()
    groups = study_groups(rows)
    seen: list[set[str]] = []
    real = transfer.CompositeProxy.fit

    def spy(self, X, y):
        seen.append(set(X["study"]))
        return real(self, X, y)

    monkeypatch.setattr(transfer.CompositeProxy, "fit", spy)
    report = leave_one_group_out(rows, "accuracy", ["train_loss", *SIGNALS], groups)
    assert {s["set"] for s in report["held_out_sets"]} == {"s0", "s1", "s2"}
    assert seen and all(len(studies) <= 2 for studies in seen)  # every fit left at least one study out
    # The outer fit for each held-out study never saw it; (the inner choice fits leave out one more).
    assert all(len(studies) == 2 for studies in seen[-1:])


def test_a_signal_that_ranks_within_studies_transfers_and_an_in_sample_calibration_is_kept_out_of_the_means():
    rows = ground_truth({"s0": 12, "s1": 12, "s2": 12, "s3": 12}).groupby(["study", "trial"], as_index=False).mean(numeric_only=True)
    rows["spec_hash"] = rows["study"] + rows["trial"].astype(str)
    rows["study"], rows["dataset"] = rows["study"].astype(str), "gz1"
    groups = study_groups(rows)
    oracle = {"oracle (fitted on s0)": lambda held: held["accuracy"].to_numpy()}
    report = leave_one_group_out(rows, "accuracy", ["train_loss", *SIGNALS], groups, fixed=oracle,
                                 fitted_on={"oracle (fitted on s0)": {"s0"}})
    refit = report["means"][transfer.REFIT]
    assert refit["mean_spearman"] > 0.8 and refit["groups"] == 4  # -train_loss ranks inside every study
    assert report["means"]["oracle (fitted on s0)"]["groups"] == 3  # its in-sample study does not count
    s0 = next(s for s in report["held_out_sets"] if s["set"] == "s0")
    assert s0["in_sample"] == ["oracle (fitted on s0)"]


def test_correlate_tables_reports_each_held_out_study_and_writes_the_candidate_it_chose(tmp_path, capsys):
    import json

    from galaxy_synth.cli import main
    from proxies.composite import CompositeProxy

    rows = ground_truth({"s0": 12, "s1": 12, "s2": 12})
    paths = []
    for study, part in rows.groupby("study"):
        paths.append(tmp_path / f"{study}.csv")
        part.to_csv(paths[-1], index=False)
    assert main(["correlate", "--tables", *map(str, paths), "--results", str(tmp_path / "r"), "--seeds", "2", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "held out one study group at a time" in out and "regret@1" in out and "train_loss alone" in out
    report = json.loads((tmp_path / "r" / "tables" / "pooled" / "correlation_report.json").read_text())
    held = report["transfer"]["held_out_sets"]
    assert [s["set"] for s in held] == ["s0", "s1", "s2"] and all(s["ground_truth_seed_vs_seed_spearman"] > 0.9 for s in held)
    chosen = report["transfer"]["shipped_candidate"]["candidate"]
    written = CompositeProxy.load(tmp_path / "r" / "tables" / "pooled" / "proxy_weights.json")
    allowed = transfer.CANDIDATES[chosen].get("features")
    assert allowed is None or set(written.features_) <= set(allowed)
    assert report["transfer_to_unseen_study_spearman"] == report["transfer"]["means"][transfer.REFIT]["mean_spearman"]
    assert (tmp_path / "r" / "tables" / "pooled" / "transfer.png").stat().st_size > 10_000


def test_regret_and_top_k_recall_come_with_intervals_that_describe_them():
    y = np.linspace(0.70, 0.90, 12)
    perfect = set_scores(y, y, n_test=800)
    assert perfect["regret_at_1_ci95"] == [0.0, 0.0] and perfect["top_k_recall_ci95"] == [1.0, 1.0]
    backwards = set_scores(-y, y, n_test=800)  # ranks the worst first
    lo, hi = backwards["regret_at_1_ci95"]
    assert backwards["regret_at_1"] == pytest.approx(0.20) and 0 < lo <= hi <= 0.20 + 1e-12
    assert backwards["top_k_recall_ci95"][1] < 0.5


def test_study_relative_ranks_remove_a_level_shift_that_reverses_the_pooled_fit():
    # Within each study train_acc rises with accuracy; across studies the study with more train_acc is the worse one,
    # so a fit on the pooled levels learns the wrong sign and a held-out study is ranked backwards.
    rng = np.random.default_rng(0)
    rows = []
    for k in range(4):
        quality = rng.normal(size=12)
        for i in range(12):
            rows.append({"dataset": "gz1", "study": f"s{k}", "trial": i, "spec_hash": f"s{k}-{i}", "full_epochs": 15,
                         "accuracy": 0.85 - 0.06 * k + 0.01 * quality[i], "n_test": 800,
                         "train_acc": 0.5 + 0.2 * k + 0.01 * quality[i], "train_loss": rng.normal()})
    rows = pd.DataFrame(rows)
    groups = study_groups(rows)
    ranked = transfer.ranked_within_sets(rows, groups, ["train_acc", "train_loss"])
    assert ranked.groupby("study")["train_acc"].max().eq(1.0).all()  # ranks within each study, not over the pool
    report = leave_one_group_out(rows, "accuracy", ["train_acc", "train_loss"], groups)
    assert report["means"][transfer.RELATIVE]["mean_spearman"] > 0.8
    assert report["means"][transfer.REFIT]["mean_spearman"] < 0.5  # the pooled levels mislead it
