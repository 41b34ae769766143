import numpy as np
import pandas as pd
import pytest

from synthesis.data.dataset import ClassMap, load_dataset
from synthesis.errors import DataError
from tests.helpers import load

# --- the three layouts --------------------------------------------------------------------------

def test_csv_folder_with_names_and_extras(csv_folder, tiny_galaxies):
    _, labels, extras, names = tiny_galaxies
    d = load(csv_folder, crop=1.0)
    assert d.images.shape == (120, 32, 32, 3) and d.images.dtype == np.uint8
    assert d.class_names == names  # order follows the integer codes
    assert np.array_equal(d.labels, labels)
    assert d.extra_names == ("z", "z_err")
    assert np.allclose(d.extras, extras, atol=1e-5)


def test_csv_folder_with_id_column_and_integer_labels_only(csv_folder):
    df = pd.read_csv(csv_folder / "labels.csv")
    df[["id", "label"]].to_csv(csv_folder / "labels.csv", index=False)
    d = load(csv_folder)
    assert d.class_names == ("0", "1", "2", "3", "4") and len(d) == 120 and d.extras.shape == (120, 0)


def test_image_folder_tree(image_folder, tiny_galaxies):
    d = load(image_folder, crop=1.0)
    assert sorted(d.class_names) == sorted(tiny_galaxies[3]) and len(d) == 120


def test_galaxy10_hdf5(galaxy10_h5, tiny_galaxies):
    images, labels, extras, _ = tiny_galaxies
    d = load(galaxy10_h5, size=48)
    assert d.crop == 1.0 and np.array_equal(d.images, images)  # already framed: no crop, no resize
    assert np.array_equal(d.labels, labels) and d.extra_names == ("redshift",)
    assert np.allclose(d.extras[:, 0], extras[:, 0])
    assert d.class_names == tuple(f"class_{k}" for k in range(5))


def test_synthetic_default_needs_no_files(tmp_path):
    d = load_dataset(None, size=32, synthetic_n=150, cache_dir=tmp_path, progress=False)
    assert len(d) == 150 and d.extra_names == ("z", "z_err") and "spiral_cw" in d.class_names


# --- class maps and chirality --------------------------------------------------------------------

def test_merge_and_drop(csv_folder):
    cmap = ClassMap.parse(["spiral_cw,spiral_acw=spiral"], ["merger"])
    d = load(csv_folder, class_map=cmap)
    assert d.class_names == ("elliptical", "spiral", "edge_on")
    counts = load(csv_folder).class_counts()
    assert d.class_counts()["spiral"] == counts["spiral_cw"] + counts["spiral_acw"]
    assert len(d) == 120 - counts["merger"]


def test_class_map_with_unknown_class_is_an_error(csv_folder):
    with pytest.raises(DataError, match="unknown class 'dont_know'"):
        load(csv_folder, class_map=ClassMap.parse([], ["dont_know"]))



# --- preprocessing and cache ---------------------------------------------------------------------







# --- bad input: one clear line naming the problem ------------------------------------------------

def edit_csv(folder, fn):
    df = pd.read_csv(folder / "labels.csv", dtype=str, keep_default_na=False)
    df = fn(df)
    df.to_csv(folder / "labels.csv", index=False)


def test_missing_folder(tmp_path):
    with pytest.raises(DataError, match="data not found"):
        load(tmp_path / "nope")


def test_folder_without_labels_or_classes(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no labels.csv and no class sub-folders"):
        load(tmp_path / "empty")


def test_empty_labels_csv(csv_folder):
    (csv_folder / "labels.csv").write_text("")
    with pytest.raises(DataError, match="labels.csv is empty"):
        load(csv_folder)


def test_header_only_labels_csv(csv_folder):
    (csv_folder / "labels.csv").write_text("id,label,file\n")
    with pytest.raises(DataError, match="no rows"):
        load(csv_folder)


def test_missing_label_column(csv_folder):
    edit_csv(csv_folder, lambda df: df[["id", "file"]])
    with pytest.raises(DataError, match="no label column"):
        load(csv_folder)


def test_missing_image_column(csv_folder):
    edit_csv(csv_folder, lambda df: df[["label_name"]])
    with pytest.raises(DataError, match="no image column"):
        load(csv_folder)


def test_non_integer_label(csv_folder):
    edit_csv(csv_folder, lambda df: df[["id", "file", "label"]].assign(label=lambda d: d.label.where(d.index != 7, "spiral")))
    with pytest.raises(DataError, match="line 9: label 'spiral' is not an integer"):
        load(csv_folder)


def test_empty_label(csv_folder):
    edit_csv(csv_folder, lambda df: df.assign(label_name=lambda d: d.label_name.where(d.index != 3, "")).drop(columns="label"))
    with pytest.raises(DataError, match="line 5: empty label"):
        load(csv_folder)


def test_fewer_than_two_classes(csv_folder):
    edit_csv(csv_folder, lambda df: df.assign(label_name="elliptical").drop(columns="label"))
    with pytest.raises(DataError, match="at least 2 classes"):
        load(csv_folder)


def test_class_too_small_to_split(csv_folder):
    edit_csv(csv_folder, lambda df: df.assign(label_name=["rare"] * 2 + list(df.label_name[2:])).drop(columns="label"))
    with pytest.raises(DataError, match="class 'rare' has 2 image"):
        load(csv_folder)


def test_duplicate_ids(csv_folder):
    edit_csv(csv_folder, lambda df: df.assign(id=lambda d: d.id.where(d.index != 5, "g0002")))
    with pytest.raises(DataError, match="line 7: duplicate id 'g0002' \\(first on line 4\\)"):
        load(csv_folder)


def test_listed_image_missing(csv_folder):
    (csv_folder / "g0010.jpg").unlink()
    with pytest.raises(DataError, match="line 12: listed image does not exist"):
        load(csv_folder)


def test_id_without_any_image_file(csv_folder):
    edit_csv(csv_folder, lambda df: df.drop(columns="file"))
    (csv_folder / "g0004.jpg").unlink()
    with pytest.raises(DataError, match="line 6: no image file for id 'g0004'"):
        load(csv_folder)


@pytest.mark.parametrize("bad", ["nan", "inf", "", "abc"])
def test_non_finite_extra_column(csv_folder, bad):
    edit_csv(csv_folder, lambda df: df.assign(z=lambda d: d.z.where(d.index != 2, bad)))
    with pytest.raises(DataError, match="line 4: column 'z'"):
        load(csv_folder)





def test_hdf5_without_required_keys(tmp_path):
    import h5py

    with h5py.File(tmp_path / "bad.h5", "w") as fh:
        fh.create_dataset("pictures", data=np.zeros((4, 8, 8, 3), np.uint8))
    with pytest.raises(DataError, match="no dataset 'images'"):
        load(tmp_path / "bad.h5")




def test_a_reopened_cache_keeps_the_vote_counts_and_the_schema(csv_folder, tmp_path):
    from synthesis.data.dataset import open_cached
    from synthesis.data.schema import load_schema
    from synthesis.data.sources import SourceOptions

    df = pd.read_csv(csv_folder / "labels.csv")
    df.assign(odd_fraction=0.25, n=40).to_csv(csv_folder / "labels.csv", index=False)
    (tmp_path / "s.toml").write_text('votes = "n"\n[[question]]\nname = "q"\nanswers = { odd = "odd_fraction", no = "rest" }\n')
    data = load(csv_folder, cache_dir=tmp_path / "cache", options=SourceOptions(schema=load_schema(tmp_path / "s.toml")))
    assert data.votes[0].tolist() == [10, 30] and data.schema["question"][0]["name"] == "q"
    again = open_cached(data.cache_file, data.fingerprint)
    assert np.array_equal(again.votes, data.votes) and again.schema == data.schema
    with pytest.raises(DataError, match="--merge/--drop with --schema"):
        load(csv_folder, class_map=ClassMap.parse(drops=["merger"]),
             options=SourceOptions(schema=load_schema(tmp_path / "s.toml")))
