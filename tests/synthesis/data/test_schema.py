"""--schema: a TOML tree of questions read into vote counts, and every way a schema or its catalogue can be wrong."""

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from synthesis.data.schema import QuestionSchema, class_labels, load_schema, vote_counts
from synthesis.errors import DataError, GalaxySynthError

ROOT = Path(__file__).resolve().parents[3]

TREE = '''
votes = "n_votes"
class_question = "kind"
[[question]]
name = "merging"
answers = { yes = "merging_fraction", no = "rest" }
[[question]]
name = "kind"
asked_by = "merging.yes"
answers = { tail = "tail_fraction", ring = "ring_fraction" }
'''


def _schema(tmp_path, text=TREE):
    path = tmp_path / "schema.toml"
    path.write_text(text)
    return load_schema(path)


def _catalogue(**columns):
    base = {"n_votes": ["40", "10", "20"], "merging_fraction": ["0.5", "0", "1"], "tail_fraction": ["0.25", "", "1"],
            "ring_fraction": ["0.75", "", "0"]}
    return pd.DataFrame({**base, **columns})


def test_fractions_and_a_votes_column_become_counts_parents_first(tmp_path):
    schema = _schema(tmp_path)
    counts = vote_counts(_catalogue(), schema, "labels.csv")
    # merging: yes = 0.5 × 40, no = the rest; kind: asked of merging.yes's 20 voters
    assert counts.tolist() == [[20, 20, 5, 15], [0, 10, 0, 0], [20, 0, 20, 0]]
    assert schema.answer_counts == (2, 2) and schema.class_index == 1
    labels, names = class_labels(counts[[0, 2]], schema, "labels.csv")
    assert labels.tolist() == [1, 0] and names == ("tail", "ring")
    with pytest.raises(DataError, match="line 3: no votes on the class question 'kind'"):
        class_labels(counts, schema, "labels.csv")  # the second galaxy: nobody said merging=yes, so no class


def test_counts_with_a_nominal_total_and_the_dict_round_trip(tmp_path):
    schema = _schema(tmp_path, 'kind = "counts"\n[[question]]\nname = "bar"\nanswers = { yes = "y", no = "n" }\n')
    counts = vote_counts(pd.DataFrame({"y": ["3", "0"], "n": ["1", "0"]}), schema, "c")
    assert counts.tolist() == [[3, 1], [0, 0]]  # a question nobody answered: zero votes
    tree = _schema(tmp_path, 'kind = "counts"\nvotes = "v"\n[[question]]\nname = "a"\nanswers = { yes = "y", no = "rest" }\n'
                             '[[question]]\nname = "b"\nasked_by = "a.yes"\nanswers = { p = "p", q = "rest" }\n')
    got = vote_counts(pd.DataFrame({"v": ["10", "10"], "y": ["4", "0"], "p": ["1", "0"]}), tree, "c")
    assert got.tolist() == [[4, 6, 1, 3], [0, 10, 0, 0]]  # rest: the total (votes, or the asking answer's count) minus
    with pytest.raises(DataError, match="line 2: question 'b': its counts add up to 5, over its 4 votes"):
        vote_counts(pd.DataFrame({"v": ["10"], "y": ["4"], "p": ["5"]}), tree, "c")
    assert QuestionSchema.from_dict(schema.to_dict()) == schema
    nominal = _schema(tmp_path, 'nominal_votes = 40\n[[question]]\nname = "q"\nanswers = { a = "a", b = "rest" }\n')
    assert vote_counts(pd.DataFrame({"a": ["0.25"]}), nominal, "c").tolist() == [[10, 30]]


@pytest.mark.parametrize("text, message", [
    ('[[question]]\nname = "q"\nanswers = {}\n', "question 'q' has no answers"),
    ('votes = "n"\n[[question]]\nname = "q"\nanswers = { a = "a" }\n', "needs at least two answers"),
    ('votes = "n"\n[[question]]\nname = "q"\nanswers = { a = "a", b = "b" }\n[[question]]\nname = "q"\n'
     'answers = { a = "a", b = "b" }\n', "question 'q' is defined twice"),
    ('votes = "n"\n[[question]]\nname = "q"\nasked_by = "p.yes"\nanswers = { a = "a", b = "b" }\n',
     "asked_by unknown question 'p'"),
    ('votes = "n"\n[[question]]\nname = "p"\nanswers = { a = "a", b = "b" }\n[[question]]\nname = "q"\n'
     'asked_by = "p.yes"\nanswers = { a = "c", b = "d" }\n', "'p' has no answer 'yes'"),
    ('votes = "n"\n[[question]]\nname = "p"\nasked_by = "q.a"\nanswers = { a = "a", b = "b" }\n[[question]]\n'
     'name = "q"\nasked_by = "p.a"\nanswers = { a = "c", b = "d" }\n', "cycle"),
    ('votes = "n"\nclass_question = "nope"\n[[question]]\nname = "q"\nanswers = { a = "a", b = "b" }\n',
     "class_question 'nope' is not a question"),
    ('[[question]]\nname = "q"\nanswers = { a = "a", b = "b" }\n', "need a total"),
    ('kind = "votes"\n[[question]]\nname = "q"\nanswers = { a = "a", b = "b" }\n', "choose fractions or counts"),
    ('votes = "n"\ncolour = 1\n[[question]]\nname = "q"\nanswers = { a = "a", b = "b" }\n', "unknown key 'colour'"),
    ('votes = "n"\n', "no [[question]] tables"),
    ('votes = \n', "not valid TOML"),
])
def test_a_bad_schema_is_one_line(tmp_path, text, message):
    with pytest.raises(GalaxySynthError, match=re.escape(message)) as caught:
        _schema(tmp_path, text)
    assert "\n" not in str(caught.value)


def test_a_missing_schema_file_is_one_line(tmp_path):
    with pytest.raises(GalaxySynthError, match="no such file"):
        load_schema(tmp_path / "none.toml")


@pytest.mark.parametrize("columns, message", [
    ({"ring_fraction": ["0.75", "", "0.5"]}, "line 4: question 'kind': its fractions sum to 1.5, over 1"),
    ({"merging_fraction": ["1.5", "0", "1"]}, "line 2: fraction column 'merging_fraction' is 1.5"),
    ({"n_votes": ["40", "-1", "20"]}, "line 3: column 'n_votes' is '-1' (votes cannot be negative)"),
    ({"tail_fraction": ["", "", "1"]}, "line 2: column 'tail_fraction' is empty but question 'kind' has votes"),
    ({"tail_fraction": ["a lot", "", "1"]}, "line 2: column 'tail_fraction' is 'a lot' (need a number)"),
])
def test_catalogue_values_that_do_not_fit_the_schema_are_one_line(tmp_path, columns, message):
    with pytest.raises(DataError, match=re.escape(message)):
        vote_counts(_catalogue(**columns), _schema(tmp_path), "labels.csv")


def test_an_unknown_column_and_negative_counts(tmp_path):
    with pytest.raises(DataError, match="has no column 'ring_fraction' \\(asked for by --schema"):
        vote_counts(_catalogue().drop(columns="ring_fraction"), _schema(tmp_path), "labels.csv")
    counts = _schema(tmp_path, 'kind = "counts"\n[[question]]\nname = "bar"\nanswers = { yes = "y", no = "n" }\n')
    with pytest.raises(DataError, match="column 'n' is '-2'"):
        vote_counts(pd.DataFrame({"y": ["3"], "n": ["-2"]}), counts, "c")


@pytest.mark.parametrize("name", ["hsc_gc1.toml", "gzdecals_rings.toml"])
def test_the_example_schemas_parse(name):
    schema = load_schema(ROOT / "docs" / "schemas" / name)
    assert len(schema.questions) >= 3


def test_the_hsc_example_reads_its_catalogue_where_present():
    labels = Path("/work/shared/data/hsc_gc1_interacting/labels.csv")
    if not labels.is_file():
        pytest.skip("the HSC catalogue is not on this machine")
    schema = load_schema(ROOT / "docs" / "schemas" / "hsc_gc1.toml")
    df = pd.read_csv(labels, dtype=str, keep_default_na=False)
    counts = vote_counts(df, schema, str(labels))
    classes, names = class_labels(counts, schema, str(labels))
    assert names == ("ring", "fan", "tail", "distortion")
    assert np.mean([names[k].startswith(n[:4]) for k, n in zip(classes, df["label_name"])]) == 1.0

