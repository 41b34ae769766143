import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from proxies.composite import CompositeProxy, MissingMetricError
from proxies.transforms import FeatureTransform


def synthetic_table(n=200, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    b = rng.lognormal(sigma=2.0, size=n)  # heavy-tailed, like SynFlow
    noise = rng.normal(size=n)
    target = 0.8 + 0.05 * a - 0.03 * np.log(b) + 0.002 * rng.normal(size=n)
    return pd.DataFrame({"a": a, "b": b, "noise": noise, "target": target})


def test_fit_recovers_a_known_relation_on_unseen_rows():
    train, test = synthetic_table(seed=0), synthetic_table(seed=1)
    proxy = CompositeProxy().fit(train, "target")
    pred = proxy.predict(test)
    assert stats.spearmanr(pred, test["target"]).statistic > 0.95
    w = proxy.coefficients()
    assert w["a"] > 0 and w["b"] < 0 and abs(w.get("noise", 0.0)) < 0.2 * abs(w["a"])
    assert np.mean(np.abs(pred - test["target"])) < 0.01  # in the target's units


def test_save_load_round_trip_predicts_identically(tmp_path):
    t = synthetic_table()
    proxy = CompositeProxy(name="test").fit(t, "target")
    proxy.provenance = {"dataset": "synthetic", "n": len(t)}
    path = proxy.save(tmp_path / "proxy_weights.json")
    again = CompositeProxy.load(path)
    assert np.allclose(again.predict(t), proxy.predict(t))
    assert again.calibration_hash == proxy.calibration_hash and again.provenance["n"] == 200
    data = json.loads(path.read_text())
    assert data["hash"] == proxy.calibration_hash and "provenance" in data


def test_hash_ignores_provenance_but_not_weights():
    t = synthetic_table()
    p1 = CompositeProxy().fit(t, "target")
    h = p1.calibration_hash
    p1.provenance["note"] = "x"
    assert p1.calibration_hash == h
    p2 = CompositeProxy().fit(synthetic_table(seed=3), "target")
    assert p2.calibration_hash != h


def test_missing_metric_is_named():
    proxy = CompositeProxy(name="gz1").fit(synthetic_table(), "target")
    with pytest.raises(MissingMetricError, match="no column 'b', required by calibration 'gz1'"):
        proxy.predict(synthetic_table().drop(columns="b"))


def test_rankgauss_is_monotone_and_handles_infinities():
    values = np.array([-np.inf, 1.0, 2.0, 3.0, 1e30, np.inf, np.nan])
    tf = FeatureTransform.fit("x", values, "rankgauss")
    out = tf.transform(np.array([-np.inf, 0.5, 2.5, 1e40, np.inf]))
    assert np.all(np.diff(out) >= 0) and np.all(np.isfinite(out))
    # a missing value (a score that failed) ranks below every finite one, -inf included
    assert tf.transform(np.array([np.nan]))[0] <= tf.transform(np.array([-np.inf]))[0] < tf.transform(np.array([1.0]))[0]


def test_constant_columns_are_ignored():
    t = synthetic_table().assign(const=1.0)
    assert "const" not in CompositeProxy().fit(t, "target").features_




def few_rows_many_metrics(n, seed):
    """Like a small ground-truth set: one metric that ranks, one weaker one, 15 that are noise."""
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=n)
    cols = {"good": signal + 0.3 * rng.normal(size=n), "weak": signal + 1.5 * rng.normal(size=n)}
    cols.update({f"noise{i}": rng.normal(size=n) for i in range(15)})
    return pd.DataFrame({**cols, "target": 0.8 + 0.05 * signal})


def test_auto_selection_keeps_the_metrics_that_rank_and_beats_all_metrics_out_of_sample():
    gains = []
    for seed in range(5):
        train, test = few_rows_many_metrics(20, seed), few_rows_many_metrics(500, 100 + seed)
        auto = CompositeProxy().fit(train, "target")
        assert "good" in auto.features_ and auto.selection_["kept"] <= 3 and auto.selection_["of"] == 17
        every = CompositeProxy(max_features=None).fit(train, "target")
        assert len(every.features_) == 17
        rho = lambda p: stats.spearmanr(p.predict(test), test["target"]).statistic  # noqa: E731
        gains.append(rho(auto) - rho(every))
    assert np.mean(gains) > 0.05


def test_fixed_max_features_and_bad_values():
    t = few_rows_many_metrics(40, 0)
    assert CompositeProxy(max_features=2).fit(t, "target").features_ == ["good", "weak"]
    with pytest.raises(ValueError, match="max_features"):
        CompositeProxy(max_features=0).fit(t, "target")  # checked at fit, as scikit-learn estimators do


def test_selection_is_saved_but_not_hashed(tmp_path):
    proxy = CompositeProxy().fit(few_rows_many_metrics(20, 1), "target")
    again = CompositeProxy.load(proxy.save(tmp_path / "w.json"))
    assert again.selection_ == proxy.selection_ and again.calibration_hash == proxy.calibration_hash
    proxy.selection_ = {}
    assert proxy.calibration_hash == again.calibration_hash


def test_follows_the_scikit_learn_estimator_contract():
    from sklearn.base import clone

    features = ["good", "weak"] + [f"noise{i}" for i in range(15)]
    proxy = CompositeProxy(features=features, max_features="auto")
    first = few_rows_many_metrics(20, 1)
    proxy.fit(first, "target")
    assert proxy.features == features and proxy.get_params()["features"] == features  # constructor params untouched
    assert proxy.features_ != features and "good" in proxy.features_  # what the fit chose lives in features_
    twin = clone(proxy)
    assert twin.get_params() == proxy.get_params() and not hasattr(twin, "features_")
    # a refit chooses again from the constructor's candidates (it used to reuse the first selection)
    swapped = first.rename(columns={"good": "noise0", "noise0": "good"})
    proxy.fit(swapped, swapped["target"].to_numpy())
    assert "noise0" in proxy.features_ and proxy.features_ == clone(proxy).fit(swapped, "target").features_
    proxy.set_params(max_features=1)
    assert proxy.get_params()["max_features"] == 1 and len(proxy.fit(first, "target").features_) == 1
    assert proxy.score(first, first["target"]) > 0.5  # RegressorMixin: R² on its own rows




def test_auto_learner_lets_the_data_decide():
    rng = np.random.default_rng(1)
    big = pd.DataFrame({"a": rng.uniform(-3, 3, 400), "b": rng.normal(size=400)})
    big["target"] = np.abs(big["a"]) + 0.05 * rng.normal(size=400)  # not monotone: no linear model ranks it
    chosen = CompositeProxy().fit(big, "target").selection_
    assert chosen["chosen"] == "trees" and chosen["inner_cv_spearman"]["trees"] > chosen["inner_cv_spearman"]["linear:1"]
    small = few_rows_many_metrics(30, 2)
    assert CompositeProxy().fit(small, "target").learner_ == "linear"  # below TREES_MIN_ROWS trees are no candidate


def test_a_failed_score_ranks_lowest_and_gets_a_missing_indicator():
    rng = np.random.default_rng(3)
    score = rng.normal(size=60)
    failed = rng.random(60) < 0.2
    target = 0.5 + 0.1 * score - 0.3 * failed  # networks whose score failed are the worst
    table = pd.DataFrame({"score": np.where(failed, np.nan, score), "target": target})
    proxy = CompositeProxy(max_features=None).fit(table, "target")
    assert proxy.features_ == ["score", "score__missing"]
    pred = proxy.predict(table)
    assert pred[failed].max() < pred[~failed].min()


def test_shipped_calibrations_still_load_with_their_hashes(tmp_path):
    from synthesis.search.study import shipped_calibration

    for name in ("default.json", "seed_published.json"):
        data = json.loads(shipped_calibration(name).read_text())
        proxy = CompositeProxy.load(shipped_calibration(name))
        assert proxy.calibration_hash == data["hash"]
    import pickle

    (tmp_path / "evil.json").write_bytes(pickle.dumps({"x": 1}))
    with pytest.raises(ValueError, match="pickle"):
        CompositeProxy.load(tmp_path / "evil.json")
