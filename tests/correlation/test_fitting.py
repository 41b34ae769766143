import numpy as np
import pandas as pd
import pytest
from scipy import stats

from correlation.fitting import correlation_report, cross_validate
from tests.conftest import shared_or_skip


def noisy_table(n=60, n_noise=30, seed=0):
    """A target that depends weakly on one metric, plus many pure-noise metrics."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(rng.normal(size=(n, n_noise)), columns=[f"noise{i}" for i in range(n_noise)])
    df["signal"] = rng.normal(size=n)
    df["target"] = 0.3 * df["signal"] + rng.normal(size=n)
    return df


def test_reported_rho_is_out_of_sample_not_in_sample():
    df = noisy_table(n=40, n_noise=34)
    features = [c for c in df.columns if c != "target"]
    # With alpha ~ 0, 35 metrics on 40 rows fit the training rows almost perfectly in-sample ...
    from proxies.composite import CompositeProxy

    in_sample = CompositeProxy(features=features, alphas=(1e-6,)).fit(df, "target").predict(df)
    assert stats.spearmanr(in_sample, df["target"]).statistic > 0.9
    # ... but the report's ρ comes from held-out folds, where the noise metrics do not help.
    report, _, _ = correlation_report(df, "target", features, folds=5, repeats=3)
    assert report["composite_spearman_cv"] < 0.5
    assert report["protocol"]["kind"] == "repeated k-fold"


def test_known_relation_is_recovered_out_of_fold():
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"a": rng.normal(size=120), "b": rng.lognormal(sigma=2, size=120), "c": rng.normal(size=120)})
    df["acc"] = 0.7 + 0.05 * df["a"] - 0.02 * np.log(df["b"]) + 0.005 * rng.normal(size=120)
    report, cv, singles = correlation_report(df, "acc", ["a", "b", "c"], folds=5, repeats=2)
    assert report["composite_spearman_cv"] > 0.95
    assert report["composite_spearman_cv"] > report["best_single_metric_in_fold"]["spearman"]
    low, high = report["composite_spearman_cv_ci95"]
    assert low <= report["composite_spearman_cv"] + 0.02 and high >= report["composite_spearman_cv"] - 0.02
    assert set(singles["metric"]) == {"a", "b", "c"}


def test_small_tables_use_leave_one_out():
    df = noisy_table(n=8, n_noise=2)
    cv = cross_validate(df, "target", ["signal", "noise0"], folds=5, repeats=10)
    assert len(cv.composite) == 1 and np.isfinite(cv.composite[0]).all()




@pytest.mark.slow
def test_nas_bench_201_table_beats_the_best_single_column():
    path = shared_or_skip("benchmarks/nb201_zc_cifar10.csv")
    df = pd.read_csv(path)
    report, _, _ = correlation_report(df, "val_accuracy", folds=5, repeats=2)
    assert report["composite_spearman_cv"] >= 0.86
    assert report["composite_spearman_cv"] > report["best_single_metric_in_fold"]["spearman"] + 0.05


class RecordingBar:
    """Stands in for tqdm: records what the bar was told, independent of tqdm's refresh throttling."""

    made: list["RecordingBar"] = []

    def __init__(self, total=None, desc="", disable=False, **_kwargs):
        self.total, self.desc, self.disable, self.n, self.closed = total, desc, disable, 0, False
        RecordingBar.made.append(self)

    def update(self, k=1):
        self.n += k

    def close(self):
        self.closed = True


def test_fitting_shows_a_bar_over_every_fold_fit(monkeypatch):
    import correlation.fitting as fitting

    RecordingBar.made = []
    monkeypatch.setattr(fitting, "tqdm", RecordingBar)
    df = noisy_table(n=20, n_noise=2)
    cross_validate(df, "target", ["signal", "noise0"], folds=5, repeats=2, progress=True)
    (bar,) = RecordingBar.made
    assert bar.desc == "fitting (target)" and not bar.disable
    assert bar.total == 10 and bar.n == 10 and bar.closed  # every fold fit counted, then closed
    cross_validate(df, "target", ["signal", "noise0"], folds=5, repeats=2)
    assert RecordingBar.made[-1].disable  # quiet unless asked


def test_every_interval_describes_the_statistic_beside_it():
    df = noisy_table(n=40, n_noise=4)
    df["signal2"] = df["signal"] * 1000 + np.random.default_rng(5).normal(size=40)  # same signal, another scale
    report, cv, _ = correlation_report(df, "target", folds=5, repeats=4)
    for key in ("best_single_metric_in_fold", "seed_weights_cv"):
        if key in report:
            low, high = report[key]["spearman_ci95"]
            assert low <= report[key]["spearman"] <= high
    low, high = report["composite_spearman_cv_ci95"]
    assert low <= report["composite_spearman_cv"] <= high


def test_best_single_metric_is_ranked_within_each_fold_before_pooling():
    rng = np.random.default_rng(2)
    n = 60
    signal = rng.normal(size=n)
    # two metrics that rank equally well, on scales 10^6 apart: folds pick either one
    df = pd.DataFrame({"small": signal + 0.2 * rng.normal(size=n), "huge": 1e6 * (signal + 0.2 * rng.normal(size=n)) + 5e6,
                       "target": signal})
    cv = cross_validate(df, "target", ["small", "huge"], folds=5, repeats=3)
    assert len(cv.chosen_single) == 2  # both were chosen somewhere
    rho = cv.summary(cv.best_single)["spearman"]
    assert rho > 0.9  # pooled raw values would rank every 'huge' fold above every 'small' fold


def test_grouped_cross_validation_keeps_each_study_in_one_fold():
    df = noisy_table(n=36, n_noise=2)
    groups = np.repeat(["a", "b", "c"], 12)
    report, cv, _ = correlation_report(df, "target", ["signal", "noise0"], folds=5, repeats=3, groups=groups)
    assert report["protocol"]["kind"] == "leave-one-group-out" and report["protocol"]["groups"] == 3
    assert len(cv.composite) == 1 and np.isfinite(cv.composite[0]).all()
