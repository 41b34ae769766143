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


def test_paired_difference_counts_discordant_galaxies_and_its_interval_is_narrower_than_unpaired():
    from galaxy_common.statistics import paired_difference

    rng = np.random.default_rng(0)
    b = rng.random(800) < 0.85
    a = b.copy()
    flip = rng.choice(np.flatnonzero(~b), size=20, replace=False)  # a is right on 20 galaxies b gets wrong
    a[flip] = True
    d = paired_difference(a, b)
    assert d["difference"] == pytest.approx(20 / 800) and d["only_a_right"] == 20 and d["only_b_right"] == 0
    low, high = d["ci95"]
    assert 0 < low < d["difference"] < high
    unpaired_se = np.sqrt(0.85 * 0.15 / 800)
    assert high - low < 2 * 1.96 * unpaired_se  # pairing removes the shared galaxies' noise
    assert paired_difference(b, a)["ci95"][1] < 0
    with pytest.raises(ValueError):
        paired_difference(a, b[:-1])
