"""correlate's written report: the JSON, the CSV and the plots people look at."""

import json

import numpy as np
import pandas as pd

from correlation.fitting import correlation_report
from correlation.report import write_report
from proxies.composite import CompositeProxy


def test_the_report_files_describe_the_fit(tmp_path):
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"a": rng.normal(size=30), "b": rng.normal(size=30)})
    table["target"] = table["a"] + 0.3 * rng.normal(size=30)
    report, cv, singles = correlation_report(table, "target", ["a", "b"], folds=5, repeats=2, seed=0)
    proxy = CompositeProxy(features=["a", "b"], name="t").fit(table, "target")
    written = write_report(tmp_path, report, cv, singles, proxy)
    names = {p.name for p in written}
    assert {"correlation_report.json", "correlation_report.csv", "proxy_weights.json", "correlation_scatter.png"} <= names
    saved = json.loads((tmp_path / "correlation_report.json").read_text())
    assert saved["composite_spearman_cv"] == report["composite_spearman_cv"] > 0.5
    csv = pd.read_csv(tmp_path / "correlation_report.csv")
    assert "composite (cross-validated)" in set(csv["metric"])
