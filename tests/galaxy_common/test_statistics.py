import numpy as np
import pytest

from galaxy_common.statistics import top_k_recall


def test_top_k_recall():
    target = np.array([0.9, 0.8, 0.7, 0.1, 0.2, 0.3])
    assert top_k_recall(target, target) == 1.0
    assert top_k_recall(-target, target) == 0.0
    assert top_k_recall(np.array([5, 4, 0, 3, 0, 0]), target) == pytest.approx(2 / 3)


def test_spearman_and_kendall_on_known_orderings():
    import numpy as np

    from galaxy_common.statistics import kendall, spearman, spearman_columns

    a = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    assert spearman(a, a**3) == pytest.approx(1.0) and spearman(a, -a) == pytest.approx(-1.0)
    assert kendall(a, np.array([1.0, 3.0, 2.0, 4.0, 5.0])) == pytest.approx(0.8)
    assert np.isnan(spearman(a, np.ones(5)))  # a constant side ranks nothing
    assert spearman(np.array([1.0, np.nan, 3.0, 4.0]), np.array([1.0, 2.0, 3.0, 4.0])) == pytest.approx(1.0)
    z = np.column_stack([a, -a, np.ones(5)])
    assert spearman_columns(z, a).tolist() == pytest.approx([1.0, -1.0, 0.0])


def test_bootstrap_interval_brackets_the_statistic_and_narrows_with_more_rows():
    import numpy as np

    from galaxy_common.statistics import bootstrap_ci, spearman

    rng = np.random.default_rng(0)
    widths = []
    for n in (20, 200):
        x = rng.normal(size=n)
        y = x + rng.normal(size=n)
        lo, hi = bootstrap_ci(x, y)
        assert lo <= spearman(x, y) <= hi
        widths.append(hi - lo)
    assert widths[1] < widths[0]
