"""Listing a source: files, labels, ids and extra columns, per input format, before anything is decoded."""

import numpy as np
import pandas as pd
import pytest

from synthesis.data.sources import listing_for
from synthesis.errors import DataError


def test_a_labels_csv_lists_files_labels_and_extras_without_decoding(csv_folder):
    listing = listing_for(str(csv_folder), None, 0, 32, 0)
    assert listing.kind == "csv" and len(listing.files) == len(listing.labels) == len(listing.ids)
    assert listing.extra_names == ("z", "z_err") and listing.extras.shape == (len(listing.ids), 2)
    assert listing.arrays is None and listing.default_crop == 0.5


def test_integer_codes_fix_the_class_order(csv_folder):
    df = pd.read_csv(csv_folder / "labels.csv")
    listing = listing_for(str(csv_folder), [], 0, 32, 0)
    order = df.drop_duplicates("label").sort_values("label")["label_name"].tolist()
    assert list(listing.class_names) == order and listing.extras.shape[1] == 0


def test_extra_columns_asked_for_must_exist(csv_folder):
    with pytest.raises(DataError, match="no column 'redshift'"):
        listing_for(str(csv_folder), ["redshift"], 0, 32, 0)


def test_the_procedural_set_and_hdf5_come_as_arrays(galaxy10_h5):
    synthetic = listing_for(None, None, 60, 16, 0)
    assert synthetic.arrays.shape == (60, 16, 16, 3) and synthetic.default_crop == 1.0
    h5 = listing_for(str(galaxy10_h5), None, 0, 32, 0)
    assert h5.kind == "galaxy10-hdf5" and h5.extra_names == ("redshift",) and h5.arrays.dtype == np.uint8


def _vote_schema(tmp_path, class_question: bool):
    from synthesis.data.schema import load_schema

    path = tmp_path / "schema.toml"
    path.write_text(('class_question = "look"\n' if class_question else "") + 'nominal_votes = 10\n[[question]]\n'
                    'name = "look"\nanswers = { odd = "odd_fraction", fine = "rest" }\n')
    return load_schema(path)


def test_a_schema_lists_vote_counts_and_its_class_question_is_the_class(csv_folder, tmp_path):
    from synthesis.data.sources import SourceOptions

    df = pd.read_csv(csv_folder / "labels.csv")
    df.assign(odd_fraction=np.where(np.arange(len(df)) % 3 == 0, 0.8, 0.1)).to_csv(csv_folder / "labels.csv", index=False)
    listing = listing_for(str(csv_folder), None, 0, 32, 0, SourceOptions(schema=_vote_schema(tmp_path, True)))
    assert listing.class_names == ("odd", "fine") and listing.votes[:2].tolist() == [[8, 2], [1, 9]]
    assert listing.labels[:3].tolist() == [0, 1, 1] and listing.soft is None
    plain = listing_for(str(csv_folder), None, 0, 32, 0, SourceOptions(schema=_vote_schema(tmp_path, False)))
    assert plain.class_names == listing_for(str(csv_folder), None, 0, 32, 0).class_names  # the label column's
    assert plain.content_hash != listing_for(str(csv_folder), None, 0, 32, 0).content_hash  # its own cache


def test_a_schema_needs_a_catalogue(tmp_path):
    from synthesis.data.sources import SourceOptions

    with pytest.raises(DataError, match="--schema reads vote columns from a labels.csv catalogue"):
        listing_for(None, None, 50, 16, 0, SourceOptions(schema=_vote_schema(tmp_path, False)))
