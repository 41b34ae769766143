"""The rules between settings: each one line from check_ranges, before anything is loaded."""

import pytest

from synthesis.errors import GalaxySynthError
from synthesis.settings import StudySettings, check_ranges

SCHEMA = 'votes = "n"\n[[question]]\nname = "q"\nanswers = { a = "a", b = "rest" }\n'


@pytest.fixture
def schema(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(SCHEMA)
    return str(path)


@pytest.mark.parametrize("values, message", [
    ({"soft_labels": "a,b"}, "--schema and --soft-labels both say what the labels are"),
    ({"merge": ["a,b=c"]}, "--merge/--drop with --schema"),
    ({"drop": ["a"]}, "--merge/--drop with --schema"),
])
def test_a_schema_is_the_labels_alone(schema, values, message):
    with pytest.raises(GalaxySynthError, match=message):
        check_ranges(StudySettings(schema=schema, **values))


def test_a_bad_schema_file_stops_before_any_work(tmp_path):
    (tmp_path / "bad.toml").write_text('votes = "n"\n[[question]]\nname = "q"\nanswers = { a = "a" }\n')
    with pytest.raises(GalaxySynthError, match="needs at least two answers"):
        check_ranges(StudySettings(schema=str(tmp_path / "bad.toml")))
    with pytest.raises(GalaxySynthError, match="no such file"):
        check_ranges(StudySettings(schema=str(tmp_path / "none.toml")))


def test_the_fraction_error_objective_needs_votes(schema):
    with pytest.raises(GalaxySynthError, match="--objective val_fraction_mae needs vote labels"):
        check_ranges(StudySettings(objective="val_fraction_mae"))
    check_ranges(StudySettings(objective="val_fraction_mae", schema=schema))
    check_ranges(StudySettings(objective="val_fraction_mae", soft_labels="a,b"))
