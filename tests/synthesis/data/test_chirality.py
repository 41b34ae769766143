from synthesis.data.chirality import find_mirror_pairs


def test_mirror_pairs_found_by_name_and_orphans_reported():
    assert find_mirror_pairs(("elliptical", "spiral_cw", "spiral_acw")) == ([(1, 2)], [])
    assert find_mirror_pairs(("elliptical", "spiral")) == ([], [])
    assert find_mirror_pairs(("elliptical", "spiral_cw")) == ([], ["spiral_cw"])
