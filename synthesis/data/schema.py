"""Galaxy Zoo's decision tree of questions (``--schema FILE``): which catalogue columns hold each answer's votes,
which answer of which question asks each question, and which question, if any, is the class.

A TOML file (read with the standard library's ``tomllib``)::

    kind = "fractions"                    # or "counts": what the answer columns hold
    votes = "n_votes"                     # the number of volunteers (fractions × votes = counts); or
    # nominal_votes = 40                  #   a nominal total where the catalogue gives fractions only
    class_question = "interaction_type"   # optional: the class = the most-voted answer of this question
    [[question]]
    name = "interaction"
    answers = { yes = "interaction_fraction", no = "rest" }   # rest: the question's total minus the others
    [[question]]
    name = "interaction_type"
    asked_by = "interaction.yes"          # its volunteers: those who gave that answer
    answers = { ring = "ring_fraction", fan = "fan_fraction", tail = "tail_fraction", distortion = "distortion_fraction" }

:func:`vote_counts` turns a catalogue into vote counts [N, answers] (0 where a question was not asked), which the
Dirichlet-multinomial head trains on (:mod:`synthesis.models.vote_head`).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from synthesis import DataError, GalaxySynthError

REST = "rest"  # an answer column meaning "the question's votes not given to its other answers"
KINDS = ("fractions", "counts")
FRACTION_TOLERANCE = 1e-3  # rounding in published fractions: a question's fractions may sum to 1.001


@dataclass(frozen=True)
class Question:
    name: str
    answers: tuple[str, ...]
    columns: tuple[str, ...]  # one per answer: a catalogue column or "rest"
    asked_by: tuple[str, str] | None = None  # (question, answer) whose voters are asked this one; None: everyone


@dataclass(frozen=True)
class QuestionSchema:
    """The questions in file order, what their columns hold and which question is the class (if any)."""

    questions: tuple[Question, ...]
    kind: str = "fractions"
    votes: str | None = None
    nominal_votes: float | None = None
    class_question: str | None = None

    @property
    def answer_counts(self) -> tuple[int, ...]:
        return tuple(len(q.answers) for q in self.questions)

    @property
    def answer_names(self) -> list[tuple[str, str]]:
        """(question, answer) for every output column, in order."""
        return [(q.name, a) for q in self.questions for a in q.answers]

    @property
    def class_index(self) -> int | None:
        names = [q.name for q in self.questions]
        return names.index(self.class_question) if self.class_question is not None else None

    def question(self, name: str) -> Question:
        return next(q for q in self.questions if q.name == name)

    def to_dict(self) -> dict[str, Any]:
        """What a model card records (and :meth:`from_dict` reads back): the TOML file's content."""
        top = {k: v for k, v in (("kind", self.kind), ("votes", self.votes), ("nominal_votes", self.nominal_votes),
                                 ("class_question", self.class_question)) if v is not None}
        questions = [{"name": q.name, "answers": dict(zip(q.answers, q.columns)),
                      **({"asked_by": ".".join(q.asked_by)} if q.asked_by else {})} for q in self.questions]
        return {**top, "question": questions}

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "schema") -> QuestionSchema:
        return _parsed(data, where)


def load_schema(path: str | Path) -> QuestionSchema:
    """The schema a TOML file describes, or one line (GalaxySynthError) saying what is wrong with it."""
    where = f"--schema {path}"
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise GalaxySynthError(f"{where}: no such file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, IsADirectoryError) as exc:
        raise GalaxySynthError(f"{where}: not valid TOML ({exc})") from None
    return _parsed(data, where)


def _parsed(data: dict[str, Any], where: str) -> QuestionSchema:
    unknown = set(data) - {"kind", "votes", "nominal_votes", "class_question", "question"}
    if unknown:
        raise GalaxySynthError(f"{where}: unknown key {sorted(unknown)[0]!r} (keys: kind, votes, nominal_votes, "
                               "class_question, [[question]])")
    kind = data.get("kind", "fractions")
    if kind not in KINDS:
        raise GalaxySynthError(f"{where}: kind = {kind!r}; choose fractions or counts")
    raw = data.get("question") or []
    if not raw:
        raise GalaxySynthError(f"{where}: no [[question]] tables")
    questions = tuple(_question(q, where) for q in raw)
    schema = QuestionSchema(questions, kind, data.get("votes"), data.get("nominal_votes"), data.get("class_question"))
    _check_tree(schema, where)
    return schema


def _question(table: Any, where: str) -> Question:
    if not isinstance(table, dict) or not isinstance(table.get("name"), str) or not table["name"]:
        raise GalaxySynthError(f"{where}: every [[question]] needs a name")
    name = table["name"]
    unknown = set(table) - {"name", "answers", "asked_by"}
    if unknown:
        raise GalaxySynthError(f"{where}: question {name!r} has unknown key {sorted(unknown)[0]!r} (name, answers, asked_by)")
    answers = table.get("answers")
    if not isinstance(answers, dict) or not answers:
        raise GalaxySynthError(f"{where}: question {name!r} has no answers (answers = {{ yes = \"col\", no = \"rest\" }})")
    if len(answers) < 2:
        raise GalaxySynthError(f"{where}: question {name!r} needs at least two answers")
    if not all(isinstance(c, str) and c for c in answers.values()):
        raise GalaxySynthError(f"{where}: question {name!r}: every answer names a column (or \"rest\")")
    if list(answers.values()).count(REST) > 1:
        raise GalaxySynthError(f"{where}: question {name!r} has more than one \"rest\" answer")
    asked_by = table.get("asked_by")
    if asked_by is not None and (not isinstance(asked_by, str) or asked_by.count(".") != 1):
        raise GalaxySynthError(f"{where}: question {name!r}: asked_by = {asked_by!r}; write QUESTION.ANSWER")
    return Question(name, tuple(answers), tuple(answers.values()), tuple(asked_by.split(".")) if asked_by else None)


def _check_tree(schema: QuestionSchema, where: str) -> None:
    """Unique names, asked_by naming a real answer, no cycle, a total for every root question, a real class question."""
    names = [q.name for q in schema.questions]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup is not None:
        raise GalaxySynthError(f"{where}: question {dup!r} is defined twice")
    by_name = {q.name: q for q in schema.questions}
    for q in schema.questions:
        if q.asked_by is None:
            continue
        parent, answer = q.asked_by
        if parent not in by_name:
            raise GalaxySynthError(f"{where}: question {q.name!r} is asked_by unknown question {parent!r} "
                                   f"(questions: {', '.join(names)})")
        if answer not in by_name[parent].answers:
            raise GalaxySynthError(f"{where}: question {q.name!r} is asked_by {parent}.{answer}, but {parent!r} has no "
                                   f"answer {answer!r} (answers: {', '.join(by_name[parent].answers)})")
    for q in schema.questions:
        seen, node = [q.name], q
        while node.asked_by is not None:
            node = by_name[node.asked_by[0]]
            if node.name in seen:
                raise GalaxySynthError(f"{where}: asked_by goes round in a cycle ({' → '.join([*seen, node.name])})")
            seen.append(node.name)
    roots_need_total = any(q.asked_by is None and (schema.kind == "fractions" or REST in q.columns) for q in schema.questions)
    if roots_need_total and schema.votes is None and schema.nominal_votes is None:
        raise GalaxySynthError(f"{where}: the questions everyone is asked need a total: votes = \"COLUMN\" (volunteers "
                               "per galaxy) or nominal_votes = N")
    if schema.nominal_votes is not None and not (isinstance(schema.nominal_votes, (int, float)) and schema.nominal_votes > 0):
        raise GalaxySynthError(f"{where}: nominal_votes = {schema.nominal_votes!r}; need a positive number")
    if schema.class_question is not None and schema.class_question not in by_name:
        raise GalaxySynthError(f"{where}: class_question {schema.class_question!r} is not a question "
                               f"(questions: {', '.join(names)})")


def vote_counts(df: pd.DataFrame, schema: QuestionSchema, where: str) -> np.ndarray:
    """Vote counts float32 [N, answers] from a catalogue (strings, as read), parents before children; 0 where a question
    was not asked. Unknown columns, fractions outside [0, 1] or over 1 per question, negative counts: one DataError."""
    columns = [c for q in schema.questions for c in q.columns if c != REST] + ([schema.votes] if schema.votes else [])
    missing = next((c for c in columns if c not in df.columns), None)
    if missing is not None:
        raise DataError(f"{where} has no column {missing!r} (asked for by --schema; found: {', '.join(df.columns)})")
    everyone = None  # the votes of a question everyone is asked (None: counts that are their own total)
    if schema.votes:
        everyone = _numbers(df, schema.votes, where, allow_nan=False)
        _not_negative(everyone, df, where, schema.votes)
    elif schema.nominal_votes:
        everyone = np.full(len(df), float(schema.nominal_votes))
    counts: dict[str, np.ndarray] = {}
    pending = list(schema.questions)
    while pending:  # parents first (the tree has no cycle, so this ends)
        q = next(q for q in pending if q.asked_by is None or q.asked_by[0] in counts)
        pending.remove(q)
        if schema.kind == "counts" and REST not in q.columns:
            total = None  # counts given for every answer: the question's own total (its votes, however it was asked)
        elif q.asked_by is None:
            total = everyone
        else:
            total = counts[q.asked_by[0]][:, schema.question(q.asked_by[0]).answers.index(q.asked_by[1])]
        counts[q.name] = _question_counts(df, q, schema.kind, total, where)
    return np.concatenate([counts[q.name] for q in schema.questions], axis=1).astype(np.float32)


def _question_counts(df: pd.DataFrame, q: Question, kind: str, total: np.ndarray | None, where: str) -> np.ndarray:
    if total is None:
        total = np.nansum([_numbers(df, c, where, allow_nan=True) for c in q.columns], axis=0)
    asked = total > 0
    values = np.zeros((len(df), len(q.answers)))
    for k, column in enumerate(q.columns):
        if column != REST:
            got = _numbers(df, column, where, allow_nan=True)
            unasked_nan = np.isnan(got) & ~asked  # catalogues leave unasked questions' fractions empty
            if (np.isnan(got) & asked).any():
                i = int(np.flatnonzero(np.isnan(got) & asked)[0])
                raise DataError(f"{where} line {i + 2}: column {column!r} is empty but question {q.name!r} has votes")
            values[:, k] = np.where(unasked_nan, 0.0, got)
            _not_negative(values[:, k], df, where, column)
            if kind == "fractions" and (values[:, k] > 1 + FRACTION_TOLERANCE).any():
                i = int(np.flatnonzero(values[:, k] > 1 + FRACTION_TOLERANCE)[0])
                raise DataError(f"{where} line {i + 2}: fraction column {column!r} is {values[i, k]:g} (need 0 to 1)")
    given = values.sum(axis=1)
    whole = np.ones(len(df)) if kind == "fractions" else total
    over = (given > whole * (1 + FRACTION_TOLERANCE) + 1e-9) & asked
    if over.any():
        i = int(np.flatnonzero(over)[0])
        what = "fractions sum to" if kind == "fractions" else "counts add up to"
        raise DataError(f"{where} line {i + 2}: question {q.name!r}: its {what} {given[i]:g}, over "
                        f"{'1' if kind == 'fractions' else f'its {whole[i]:g} votes'}")
    if REST in q.columns:
        values[:, q.columns.index(REST)] = np.clip(whole - given, 0.0, None)
    counts = values * total[:, None] if kind == "fractions" else values
    return np.where(asked[:, None], counts, 0.0)


def _numbers(df: pd.DataFrame, column: str, where: str, allow_nan: bool) -> np.ndarray:
    raw = df[column].astype(str).str.strip()
    values = pd.to_numeric(raw.replace({"": "nan"}), errors="coerce").to_numpy(np.float64)
    blank = raw.str.lower().isin(["", "nan", "null", "none"]).to_numpy()
    bad = (np.isnan(values) & ~blank) | np.isinf(values) | (blank & (not allow_nan))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(f"{where} line {i + 2}: column {column!r} is {df[column].iloc[i]!r} (need a number)")
    return values


def _not_negative(values: np.ndarray, df: pd.DataFrame, where: str, column: str) -> None:
    if (values < 0).any():
        i = int(np.flatnonzero(values < 0)[0])
        raise DataError(f"{where} line {i + 2}: column {column!r} is {df[column].iloc[i]!r} (votes cannot be negative)")


def class_labels(votes: np.ndarray, schema: QuestionSchema, where: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """With a class question: each galaxy's most-voted answer of it, and the answers as class names."""
    q = schema.question(schema.class_question)
    start = sum(schema.answer_counts[: schema.class_index])
    block = votes[:, start:start + len(q.answers)]
    unasked = block.sum(axis=1) <= 0
    if unasked.any():
        raise DataError(f"{where} line {int(np.flatnonzero(unasked)[0]) + 2}: no votes on the class question "
                        f"{q.name!r}, so no class (drop such rows, or leave class_question out)")
    return block.argmax(axis=1).astype(np.int64), q.answers
