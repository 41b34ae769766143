import torch

from synthesis.training.augment import DihedralAugment


def d4(img):
    """All 8 elements of D4 applied to one CHW image, tagged with whether they reflect."""
    out = []
    for flip in (False, True):
        base = torch.flip(img, dims=(2,)) if flip else img
        for k in range(4):
            out.append((torch.rot90(base, k, dims=(1, 2)), flip))
    return out


def classify(orig, aug):
    matches = [flip for t, flip in d4(orig) if torch.equal(t, aug)]
    assert len(matches) == 1, "augmented image is not exactly one dihedral transform of its input"
    return matches[0]


def test_flips_swap_mirror_labels_and_rotations_keep_them():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(64, 3, 8, 8)
    y = torch.tensor([0, 1, 2, 3] * 16)
    aug = DihedralAugment(num_classes=4, mirror_pairs=[(1, 2)], noise_std=0.0)
    soft = torch.nn.functional.one_hot(y, 4).float() * 0.7 + 0.075  # votes that lean on each galaxy's label
    xa, ya, sa = aug(x, y, g, soft)
    flips = 0
    for i in range(64):
        flipped = classify(x[i], xa[i])
        flips += flipped
        expected = {1: 2, 2: 1}.get(int(y[i]), int(y[i])) if flipped else int(y[i])
        assert int(ya[i]) == expected
        assert int(sa[i].argmax()) == expected  # the vote fractions of mirror classes swap with the label
    assert 15 < flips < 49  # both kinds occur


def test_no_flips_when_disabled():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(32, 3, 8, 8)
    y = torch.randint(0, 3, (32,))
    xa, ya, _ = DihedralAugment(3, [(1, 2)], allow_flips=False)(x, y, g)
    assert torch.equal(ya, y)
    assert not any(classify(x[i], xa[i]) for i in range(32))


def test_noise_is_light_and_seeded():
    x = torch.zeros(4, 3, 16, 16)
    y = torch.zeros(4, dtype=torch.long)
    a, _, _ = DihedralAugment(2, noise_std=0.05)(x, y, torch.Generator().manual_seed(5))
    b, _, _ = DihedralAugment(2, noise_std=0.05)(x, y, torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and 0.04 < a.std() < 0.06
