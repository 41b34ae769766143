import numpy as np
import pandas as pd
import pytest
from PIL import Image

import synthesis.data.decode as data_mod
from synthesis.errors import DataError
from tests.helpers import load


def test_centre_crop_keeps_the_middle():
    arr = np.zeros((100, 100, 3), np.uint8)
    arr[25:75, 25:75] = 255  # a bright central square covering the middle half
    out = data_mod.centre_crop_resize(arr, 20, crop=0.5)
    assert out.shape == (20, 20, 3) and out.min() == 255


@pytest.mark.parametrize("mode", ["L", "RGBA", "I;16", "P"])
def test_unusual_image_modes_are_converted(csv_folder, mode):
    src = Image.open(csv_folder / "g0001.jpg").convert("RGB")
    if mode == "I;16":
        arr = (np.asarray(src.convert("L"), dtype=np.uint16) * 257)
        img = Image.fromarray(arr)  # uint16 -> a 16-bit grayscale image
        assert img.mode.startswith("I")
    else:
        img = src.convert(mode)
    img.save(csv_folder / "g0001.png")
    df = pd.read_csv(csv_folder / "labels.csv")
    df.loc[1, "file"] = "g0001.png"
    df.to_csv(csv_folder / "labels.csv", index=False)
    d = load(csv_folder)
    assert d.images[1].shape == (32, 32, 3) and d.images[1].max() > 30


def test_corrupt_image(csv_folder):
    (csv_folder / "g0003.jpg").write_bytes(b"this is not a jpeg")
    with pytest.raises(DataError, match="corrupt or unreadable image .*g0003.jpg"):
        load(csv_folder)


def test_truncated_image(csv_folder):
    raw = (csv_folder / "g0006.jpg").read_bytes()
    (csv_folder / "g0006.jpg").write_bytes(raw[: len(raw) // 3])
    with pytest.raises(DataError, match="g0006.jpg"):
        load(csv_folder)


def test_decode_rows_reports_each_bad_row_and_keeps_the_good_ones(tmp_path):
    from PIL import Image

    from synthesis.data.decode import decode_rows

    good = tmp_path / "good.png"
    Image.fromarray(np.full((20, 20, 3), 200, np.uint8)).save(good)
    (tmp_path / "bad.png").write_text("not an image")
    images, status = decode_rows(([(str(good),), (str(tmp_path / "bad.png"),), (str(tmp_path / "gone.png"),)], 8, 1.0, None))
    assert images.dtype == np.uint8 and images.shape == (3, 8, 8, 3)
    assert status[0] == "ok" and (images[0] == 200).all()
    assert status[1].startswith("error: corrupt or unreadable image") and status[2].startswith("error: image not found")
    assert (images[1:] == 0).all()


def test_decode_rows_reads_fits_cubes_as_raw_float_fluxes(tmp_path):
    fits = pytest.importorskip("astropy.io.fits", reason="FITS input needs astropy (the fits extra)")
    from synthesis.data.decode import decode_rows
    from synthesis.data.fits import FitsLayout

    cube = np.stack([np.full((16, 16), v, np.float32) for v in (1.5, -2.0, 30.0)])
    fits.PrimaryHDU(cube).writeto(tmp_path / "g.fits")
    images, status = decode_rows(([(str(tmp_path / "g.fits"),), (str(tmp_path / "nope.fits"),)], 8, 1.0, FitsLayout().to_dict()))
    assert images.dtype == np.float32 and images.shape == (2, 8, 8, 3) and status[0] == "ok" and status[1].startswith("error")
    assert np.allclose(images[0].mean(axis=(0, 1)), (1.5, -2.0, 30.0))
