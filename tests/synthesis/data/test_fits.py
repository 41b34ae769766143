"""FITS cutouts: cubes, per-band files, HDUs, NaN pixels, float16 cache; every bad input one line."""

import numpy as np
import pytest

from galaxy_synth.cli import main
from synthesis.data.dataset import load_dataset
from synthesis.data.sources import SourceOptions
from synthesis.errors import DataError
from tests.helpers import write_fits_catalogue

pytest.importorskip("astropy", reason="FITS input needs astropy (the fits extra; in the dev extra)")
TINY = ["--size", "32", "--max-samples", "60", "--val-subset", "20", "--no-progress", "--trials", "1", "--epochs", "1"]


def _load(root, **kw):
    return load_dataset(str(root), size=16, crop=1.0, progress=False, min_per_class=3, **kw)


def test_a_band_cube_is_read_as_every_band_and_cached_as_float16(tmp_path):
    root = write_fits_catalogue(tmp_path / "cube", n=60, bands=5)
    data = _load(root, cache_dir=tmp_path / "cache")
    assert data.images.shape == (60, 16, 16, 5) and data.images.dtype == np.float16 and data.storage
    assert data.channels == tuple(f"band{b}" for b in range(5)) or len(data.channels) == 5
    assert data.catalogue["id"][:2] == ["J00000", "J00001"]
    again = _load(root, cache_dir=tmp_path / "cache")  # from the cache, same values
    assert np.array_equal(np.asarray(again.images), np.asarray(data.images)) and again.storage == data.storage
    picked = _load(root, options=SourceOptions(bands="0,2,4"))
    assert picked.images.shape[-1] == 3
    assert np.allclose(np.asarray(picked.images, np.float32) * np.asarray(picked.storage),
                       np.asarray(data.images, np.float32)[..., [0, 2, 4]] * np.asarray(data.storage)[[0, 2, 4]], rtol=2e-3,
                       atol=1e-3)


def test_per_band_files_and_a_named_hdu(tmp_path):
    per_band = _load(write_fits_catalogue(tmp_path / "pb", n=60, bands=3, layout="per_band"), options=SourceOptions(bands="r,g"))
    assert per_band.images.shape[-1] == 2 and per_band.channels == ("r", "g")
    one = _load(write_fits_catalogue(tmp_path / "img", n=60, bands=3, layout="image"), options=SourceOptions(hdu="SCI"))
    assert one.images.shape[-1] == 1


def test_nan_pixels_are_filled_and_counted(tmp_path, caplog):
    root = write_fits_catalogue(tmp_path / "nan", n=60, bands=3, nan_pixels=20)
    with caplog.at_level("WARNING", logger="galaxy_synth"):
        data = _load(root)
    assert np.isfinite(np.asarray(data.images, np.float32)).all()
    assert any("filled" in r.getMessage() and "NaN" in r.getMessage() for r in caplog.records)


def _break(root, what):
    import pandas as pd
    from astropy.io import fits

    df = pd.read_csv(root / "labels.csv")
    if what == "text":
        (root / "images" / "g0.fits").write_text("not a FITS file")
    elif what == "all_nan":
        fits.PrimaryHDU(np.full((3, 32, 32), np.nan, np.float32)).writeto(root / "images" / "g0.fits", overwrite=True)
    elif what == "wrong_bands":
        fits.PrimaryHDU(np.zeros((2, 32, 32), np.float32)).writeto(root / "images" / "g0.fits", overwrite=True)
    elif what == "mixed":
        df.loc[0, "file"] = "images/g0.jpg"
        (root / "images" / "g0.jpg").write_bytes(b"")
        df.to_csv(root / "labels.csv", index=False)
    elif what == "band_sizes":
        fits.PrimaryHDU(np.zeros((20, 20), np.float32)).writeto(root / "images" / "g0_g.fits", overwrite=True)
    return root


@pytest.mark.parametrize("what, layout, extra, words", [
    ("text", "cube", [], "is not a readable FITS file"),
    ("all_nan", "cube", [], "has no finite pixel"),
    ("wrong_bands", "cube", [], "band count that differs"),
    ("mixed", "cube", [], "FITS and other images"),
    ("band_sizes", "per_band", [], "differ in size"),
    (None, "cube", ["--hdu", "7"], "no HDU 7"),
    (None, "cube", ["--bands", "0,9"], "--bands asks for"),
    (None, "per_band", ["--bands", "g,q"], "no column file_q"),
])
def test_bad_fits_input_is_one_line_exit_2_and_nothing_is_written(tmp_path, capsys, what, layout, extra, words):
    root = write_fits_catalogue(tmp_path / "bad", n=90, bands=3, layout=layout)
    if what:
        _break(root, what)
    results = tmp_path / "r"
    code = main(["synth", "--data", str(root), "--results", str(results), *TINY, *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and words in err[0], err
    assert not (results / "study.db").exists() and not list((results / "cache").glob("*.npy") if (results / "cache").exists() else [])


def test_without_astropy_the_error_names_the_extra(tmp_path, monkeypatch):
    import builtins

    root = write_fits_catalogue(tmp_path / "x", n=30, bands=3)
    real = builtins.__import__

    def no_astropy(name, *a, **k):
        if name.startswith("astropy"):
            raise ImportError("no astropy")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_astropy)
    with pytest.raises(DataError, match=r"galaxy-synth\[fits\]"):
        _load(root)
