"""Tables a user names: one line for anything that cannot be read."""

import pandas as pd
import pytest

from galaxy_common.tables import read_table, write_table
from synthesis.errors import DataError


def test_round_trip_and_one_line_for_bad_tables(tmp_path):
    df = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    path = write_table(df, tmp_path / "t" / "rows.csv")
    assert read_table(path).equals(df)
    with pytest.raises(DataError, match="table not found"):
        read_table(tmp_path / "nope.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match="cannot read"):
        read_table(tmp_path / "empty.csv")
    (tmp_path / "binary.csv").write_bytes(b"\xff\xfe\x00\x81\x82")
    with pytest.raises(DataError) as exc:
        read_table(tmp_path / "binary.csv", "ground-truth table")
    assert "\n" not in str(exc.value)
