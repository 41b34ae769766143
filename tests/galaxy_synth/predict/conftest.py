"""Predict's shared fixtures: a small catalogue of procedural galaxies like the exported study's training set."""

import pandas as pd
import pytest
from PIL import Image


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory):
    """40 procedural galaxies as PNG files and a catalogue CSV with id, file, z, z_err, ra, dec."""
    from synthesis.data.synthetic import generate_galaxies

    imgs, _, extras, _ = generate_galaxies(n=40, size=32, seed=21)  # as the training set was rendered
    root = tmp_path_factory.mktemp("cat")
    (root / "img").mkdir()
    rows = []
    for i, im in enumerate(imgs):
        Image.fromarray(im).save(root / "img" / f"g{i}.png")
        rows.append({"id": f"G{i:03d}", "file": f"img/g{i}.png", "z": extras[i, 0], "z_err": extras[i, 1],
                     "ra": 150 + i / 100, "dec": 2 - i / 100})
    pd.DataFrame(rows).to_csv(root / "cat.csv", index=False)
    return root
