import numpy as np

from synthesis.data.synthetic import CLASS_NAMES, generate_galaxies


def test_deterministic_from_the_seed_and_varied_across_seeds():
    a = generate_galaxies(n=40, size=32, seed=7)
    b = generate_galaxies(n=40, size=32, seed=7)
    c = generate_galaxies(n=40, size=32, seed=8)
    assert all(np.array_equal(x, y) for x, y in zip(a[:3], b[:3]))
    assert not np.array_equal(a[0], c[0])


def test_shapes_classes_and_redshift_ranges():
    images, labels, extras, names = generate_galaxies(n=400, size=32, seed=0)
    assert images.shape == (400, 32, 32, 3) and images.dtype == np.uint8
    assert names == CLASS_NAMES and set(np.unique(labels)) == set(range(len(CLASS_NAMES)))
    z, z_err = extras[:, 0], extras[:, 1]
    assert np.all(z > 0) and np.all(z < 0.35) and np.all((z_err > 0.003) & (z_err < 0.03))


def test_redshift_is_informative_high_z_galaxies_are_smaller_and_fainter():
    images, _, extras, _ = generate_galaxies(n=600, size=32, seed=1)
    flux = images.astype(float).mean(axis=(1, 2, 3))
    assert np.corrcoef(extras[:, 0], flux)[0, 1] < -0.3


def test_spiral_chiralities_are_mirror_images_of_each_other():
    # The same random stream renders a clockwise and an anticlockwise spiral; flipping one
    # left-right must look more like the other than the unflipped one does.
    import synthesis.data.synthetic as s

    size = 48
    yy, xx = np.mgrid[0:size, 0:size].astype(float)
    c = (size - 1) / 2
    cw = s._spiral_disk(xx, yy, c, c, 8.0, 1.0, 0.0, +1, 2, 20.0, 0.8, 0.0)
    acw = s._spiral_disk(xx, yy, c, c, 8.0, 1.0, 0.0, -1, 2, 20.0, 0.8, 0.0)
    mirrored = cw[:, ::-1]
    assert np.abs(mirrored - acw).mean() < 0.2 * np.abs(cw - acw).mean()
