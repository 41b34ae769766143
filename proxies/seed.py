"""The seed's published composite weights, as a calibration (the baseline every fit is compared with).
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from proxies.composite import CompositeProxy
from proxies.transforms import FeatureTransform


def seed_calibration(stats_table: pd.DataFrame | None = None) -> CompositeProxy:
    """The composite-score seed's published weights as a named calibration.

    −0.701·z(train_loss) −0.671·z(grad_norm_mean) +0.406·z(val_loss) −0.395·z(train_loss_cv)
    +0.311·z(gap) (reported Spearman 0.743, in-sample, on the seed's own data). The z statistics
    come from ``stats_table`` (rows of metrics, e.g. a study's trials); the score is unitless.
    """
    weights = {"train_loss": -0.701, "grad_norm_mean": -0.671, "val_loss": 0.406, "train_loss_cv": -0.395, "gap": 0.311}
    proxy = CompositeProxy(features=list(weights), transform="z", name="seed-published", learner="linear")
    if stats_table is None:
        proxy.transforms_ = [FeatureTransform(n, "z") for n in weights]
    else:
        proxy.transforms_ = [FeatureTransform.fit(n, pd.to_numeric(stats_table[n], errors="coerce").to_numpy(float), "z")
                             for n in weights]
    proxy.features_ = list(weights)
    proxy.weights_ = np.array(list(weights.values()))
    proxy.intercept_, proxy.alpha_, proxy.learner_, proxy.trees_ = 0.0, None, "linear", None
    proxy.selection_ = {}
    proxy.provenance = {"source": "composite-score seed, published weights (in-sample Spearman 0.743 on its data)",
                        "created": time.strftime("%Y-%m-%d")}
    return proxy
