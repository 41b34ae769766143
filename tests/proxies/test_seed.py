import numpy as np
import pandas as pd

from proxies.seed import seed_calibration


def test_seed_calibration_has_the_published_weights():
    t = pd.DataFrame({"train_loss": [1.0, 2.0, 3.0], "grad_norm_mean": [1.0, 1.0, 2.0], "val_loss": [1.0, 2.0, 2.0],
                      "train_loss_cv": [0.1, 0.2, 0.3], "gap": [0.0, 0.1, 0.2]})
    proxy = seed_calibration(t)
    assert proxy.coefficients() == {"train_loss": -0.701, "grad_norm_mean": -0.671, "val_loss": 0.406,
                                    "train_loss_cv": -0.395, "gap": 0.311}
    z = (t - t.mean()) / t.std(ddof=0)
    expected = z @ pd.Series(proxy.coefficients())
    assert np.allclose(proxy.predict(t), expected)
