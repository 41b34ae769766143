"""Choices by name: the stored strings, and the objective table every module reads."""

import json

import pytest

from synthesis.choices import OBJECTIVES, Objective, RankBy, names, objective_info


def test_values_are_the_strings_studies_store():
    assert names(Objective) == ("composite", "val_acc", "balanced_acc", "train_acc", "multi", "val_fraction_mae")
    assert Objective.COMPOSITE == "composite" and json.dumps({"o": Objective.VAL_ACC}) == '{"o": "val_acc"}'
    assert "proxy" in names(RankBy)


def test_the_objective_table_covers_every_objective():
    assert set(OBJECTIVES) == set(Objective)
    assert objective_info("multi").directions == ["maximize", "minimize"]
    assert objective_info("val_acc").directions == ["maximize"] and not objective_info("val_acc").calibrated
    assert objective_info(None) is OBJECTIVES[Objective.COMPOSITE]  # studies from before the choice existed
    with pytest.raises(ValueError):
        objective_info("accuracy")
