import json

import numpy as np
import pandas as pd

from proxies.composite import CompositeProxy


def test_trees_are_saved_as_json_and_predict_exactly_as_scikit_learn(tmp_path):
    from sklearn.ensemble import HistGradientBoostingRegressor

    from proxies.trees import TREE_PARAMS, finite_for_trees

    rng = np.random.default_rng(0)
    t = pd.DataFrame({"a": rng.normal(size=300), "b": rng.normal(size=300)})
    t.loc[::7, "b"] = np.nan  # missing values are routed by the trees
    t.loc[3, "a"] = -np.inf
    t["target"] = np.sin(2 * t["a"].clip(-3, 3)) + np.nan_to_num(t["b"]) ** 2
    proxy = CompositeProxy(learner="trees").fit(t, "target")
    again = CompositeProxy.load(proxy.save(tmp_path / "trees.json"))
    x = t[["a", "b"]].to_numpy()
    want = HistGradientBoostingRegressor(random_state=0, **TREE_PARAMS).fit(finite_for_trees(x), t["target"]).predict(
        finite_for_trees(x))
    assert np.allclose(again.predict(t), want) and again.calibration_hash == proxy.calibration_hash
    assert json.loads((tmp_path / "trees.json").read_text())["learner"] == "trees"
