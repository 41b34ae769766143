"""One declaration per setting's rule, one validator for all of them."""

import argparse
import dataclasses
from dataclasses import dataclass

import pytest

from synthesis.command_line import add_arguments
from synthesis.declarations import at_least, between, half_open, problem_of, problems, setting
from synthesis.errors import GalaxySynthError
from synthesis.settings import StudySettings, check_ranges, device_defaults

FIELDS = dataclasses.fields(StudySettings)


def _rule(f):
    return f.metadata["rule"]


def _parse_level(text):
    if text != "high":
        raise GalaxySynthError(f"--level {text!r}: only 'high'")


@dataclass
class _Toy:
    count: int = setting(1, help="h", bounds=at_least(1))
    share: float = setting(0.5, help="h", bounds=half_open(0.0, 1.0), problem="{flag} {value} is no share of [{low}, {high})")
    colour: str = setting("red", help="h", choices=("red", "blue"))
    level: str | None = setting(None, help="h", parse=_parse_level)
    free: int = setting(0, help="h")


def test_a_declared_rule_is_enforced_by_the_one_validator():
    assert problems(_Toy()) == [] and problems(_Toy(level="high", free=-5)) == []
    assert problems(_Toy(count=0, share=1.0, colour="green", level="low")) == [
        "--count must be >= 1", "--share 1.0 is no share of [0, 1)", "--colour 'green': choose from red, blue",
        "--level 'low': only 'high'"]
    assert problem_of(_Toy, "count", 0) == "--count must be >= 1" and problem_of(_Toy, "count", None) is None


def _below(bound):
    return bound - 1 if isinstance(bound, int) else bound - 0.01


@pytest.mark.parametrize("f", [f for f in FIELDS if _rule(f) and _rule(f).bounds], ids=lambda f: f.name)
def test_every_declared_range_holds_at_its_edges(f):
    bounds, flag = _rule(f).bounds, "--" + f.name.replace("_", "-")
    check_ranges(StudySettings(**{f.name: bounds.low}))  # the edge is allowed
    with pytest.raises(GalaxySynthError, match=flag):
        check_ranges(StudySettings(**{f.name: _below(bounds.low)}))
    if bounds.high is not None:
        above = bounds.high if bounds.open_high else bounds.high + 0.01
        with pytest.raises(GalaxySynthError, match=flag):
            check_ranges(StudySettings(**{f.name: above}))


@pytest.mark.parametrize("f", [f for f in FIELDS if _rule(f) is None and str(f.type).split(" ")[0] in ("int", "float")],
                         ids=lambda f: f.name)
def test_no_number_has_a_rule_besides_its_declaration(f):
    check_ranges(StudySettings(**{f.name: -10**6}))  # a rule for it belongs beside the field, not in the validator


@pytest.mark.parametrize("f", [f for f in FIELDS if _rule(f) and _rule(f).choices and f.metadata["cli"]],
                         ids=lambda f: f.name)
def test_the_command_line_and_the_validator_read_the_same_choices(f):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    flag = "--" + f.name.replace("_", "-")
    for choice in _rule(f).choices:
        assert getattr(parser.parse_args([flag, choice]), f.name) == choice
        needs = {"strategy": "tpe", **({"soft_labels": "a,b"} if choice == "val_fraction_mae" else {})}  # votes
        check_ranges(StudySettings(**{f.name: choice}, **(needs if f.name == "objective" else {})))
    with pytest.raises(SystemExit):
        parser.parse_args([flag, "bogus"])
    with pytest.raises(GalaxySynthError, match=f"{flag} 'bogus': choose from"):
        check_ranges(StudySettings(**{f.name: "bogus"}))


def test_auto_defaults_are_declared_per_device():
    autos = {f.name for f in FIELDS if f.metadata["auto"]}
    assert autos == {"size", "max_mflops", "trials", "cost"}  # cost: flops for a new study, a resumed one's own
    assert all(getattr(StudySettings(), name) is None for name in autos)  # "auto" until resolved
    assert device_defaults("cpu") == {"size": 32, "max_mflops": 40.0, "trials": 20, "cost": "flops"}
    assert device_defaults("cuda") == device_defaults("mps") == {"size": 64, "max_mflops": 0.0, "trials": 20, "cost": "flops"}


@pytest.mark.parametrize("values, message", [
    ({"trials": 0}, "--trials must be >= 1"),
    ({"epochs": 0}, "--epochs must be >= 1"),
    ({"size": 4}, "--size 4 is too small (need >= 8)"),
    ({"crop": 2.0}, "--crop 2.0 must be between 0.05 and 1"),
    ({"max_samples": 1, "val_subset": 1}, "--max-samples and --val-subset must be >= 2"),
    ({"val_subset": 1}, "--max-samples and --val-subset must be >= 2"),
    ({"max_mflops": -1.0}, "--max-mflops must be >= 0 (0 = no cap)"),
    ({"warmup": 1.0}, "--warmup 1.0 must be a fraction in [0, 1)"),
    ({"label_smoothing": -0.1}, "--label-smoothing -0.1 must be in [0, 1)"),
    ({"max_blocks": 0}, "--max-blocks must be >= 1"),
    ({"growth_patience": 0}, "--growth-patience must be >= 1"),
    ({"workers": 0}, "--workers must be >= 1"),
    ({"max_ms": -1.0}, "--max-ms must be >= 0 (0 = no cap)"),
    ({"precision": "fp8"}, "--precision 'fp8': choose from auto, fp32, bf16, fp16"),
    ({"fidelities": "2"}, "--fidelities '2': at least two increasing epoch counts, e.g. 2,6,18"),
    ({"fidelities": "1,2,4"}, "--fidelities 1,2,4 must start at the trial budget --epochs 2"),
    ({"fidelities": "2,4", "objective": "multi"}, "--fidelities cannot promote multi-objective trials (Optuna does not prune them)"),
    ({"strategy": "progressive", "objective": "composite"},
     "--strategy progressive scores children by validation accuracy (val_acc, or balanced_acc): --objective composite does not apply"),
])
def test_each_rule_says_what_it_always_said_in_one_line(values, message):
    with pytest.raises(GalaxySynthError) as exc:
        check_ranges(StudySettings(**values))
    assert str(exc.value) == message


def test_every_range_is_declared_beside_its_field():
    ranged = {f.name for f in FIELDS if _rule(f) and _rule(f).bounds}
    assert ranged == {"size", "crop", "max_samples", "val_subset", "workers", "trials", "epochs", "label_smoothing",
                      "warmup", "max_mflops", "max_ms", "max_blocks", "growth_patience"}
