import numpy as np
import pytest
from PIL import Image

from synthesis.errors import DataError
from tests.helpers import load


def test_cache_is_reused(csv_folder, tmp_path, monkeypatch):
    import synthesis.data.dataset as dataset_mod

    calls = []
    real = dataset_mod.decoded_chunks

    def counting(*a, **k):  # what load_dataset decodes through, where it looks the name up
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(dataset_mod, "decoded_chunks", counting)
    first = load(csv_folder, cache_dir=tmp_path / "cache")
    assert calls and len(list((tmp_path / "cache").glob("*.npy"))) == 1  # the first load decoded (the spy sees it)
    calls.clear()
    second = load(csv_folder, cache_dir=tmp_path / "cache")
    assert not calls, "decoded again despite the cache"
    assert np.array_equal(first.images, second.images) and first.fingerprint == second.fingerprint


def test_cache_key_changes_with_content(csv_folder, tmp_path):
    a = load(csv_folder, cache_dir=tmp_path / "c")
    img = np.asarray(Image.open(csv_folder / "g0000.jpg")).copy()
    Image.fromarray(255 - img).save(csv_folder / "g0000.jpg")
    b = load(csv_folder, cache_dir=tmp_path / "c")
    assert a.fingerprint != b.fingerprint and not np.array_equal(a.images[0], b.images[0])


def test_bad_input_writes_no_cache(csv_folder, tmp_path):
    (csv_folder / "g0003.jpg").write_bytes(b"junk")
    with pytest.raises(DataError):
        load(csv_folder, cache_dir=tmp_path / "cache")
    assert not list((tmp_path / "cache").glob("*")) if (tmp_path / "cache").exists() else True
