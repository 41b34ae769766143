import numpy as np

from synthesis.data.splits import stratified_split, stratified_subset


def test_split_is_disjoint_complete_stratified_and_reproducible():
    labels = np.repeat(np.arange(4), [700, 100, 60, 5])
    a = stratified_split(labels, seed=1)
    b = stratified_split(labels, seed=1)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    allidx = np.concatenate(list(a.values()))
    assert len(allidx) == len(labels) == len(np.unique(allidx))
    for k in a:
        assert set(np.unique(labels[a[k]])) == {0, 1, 2, 3}  # every class in every split
    frac = np.bincount(labels[a["test"]]) / np.bincount(labels)
    assert np.allclose(frac[:3], 0.25, atol=0.02)
    assert not np.array_equal(stratified_split(labels, seed=2)["test"], a["test"])


def test_subset_keeps_proportions_and_size():
    labels = np.repeat(np.arange(3), [800, 150, 50])
    idx = np.arange(1000)
    sub = stratified_subset(idx, labels, 200, seed=0)
    assert len(sub) == 200 and len(np.unique(sub)) == 200
    assert np.allclose(np.bincount(labels[sub]) / 200, [0.8, 0.15, 0.05], atol=0.01)
    assert np.array_equal(sub, stratified_subset(idx, labels, 200, seed=0))
    assert len(stratified_subset(idx, labels, 5000, seed=0)) == 1000
