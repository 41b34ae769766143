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
