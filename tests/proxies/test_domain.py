"""A calibration knows what it was fitted on, and a study is told how it differs."""

import math

import pandas as pd

from proxies.domain import differences, domain_of, outside


def _domain():
    rows = pd.DataFrame({"dataset": ["gz1_dev"] * 3, "trial_size": [32] * 3, "trial_epochs": [2] * 3,
                         "log_flops": [math.log10(2e6), math.log10(10e6), math.log10(40e6)]})
    return domain_of(rows)


def test_the_domain_records_data_settings_and_the_size_range():
    d = _domain()
    assert d["datasets"] == ["gz1_dev"] and d["size"] == [32] and d["epochs"] == [2]
    assert d["log_flops"][1] == math.log10(40e6)


def test_other_data_and_other_settings_are_told_apart():
    d = _domain()
    same = {"dataset": "gz1_dev", "size": 32, "epochs": 2, "max_mflops": 40}
    assert outside(d, same) == []
    other_data = differences(d, {**same, "dataset": "rings"})
    assert other_data["data"] and not other_data["settings"]
    bigger = differences(d, {**same, "size": 64, "max_mflops": 0})
    assert any("size 64" in r for r in bigger["settings"]) and any("no cap" in r for r in bigger["settings"])
    assert differences({}, same) == {"data": [], "settings": []}  # an old calibration without a domain
