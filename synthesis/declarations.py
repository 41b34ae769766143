"""How a setting is declared, once, beside its field: its default, help, CLI group, whether a study freezes it,
and its rule (the choices it takes, the range it lies in, how it must parse, its hardware-dependent default);
and the one validator that enforces every declared rule.

The pattern is scikit-learn's ``_parameter_constraints``: each parameter's constraint stands beside the
parameter, and one function checks them all. Its own validator is not used here: it is private API, its
messages are not the one-line ``--option`` messages users see, and the CLI checks its arguments before
anything heavy (scikit-learn included) is imported.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from synthesis.errors import GalaxySynthError

CPU, ACCELERATOR = "cpu", "gpu"  # the keys of an ``auto`` default: a CPU, and any accelerator (cuda, mps)


@dataclass(frozen=True)
class Bounds:
    """The range a number lies in: ``low <= value`` and ``value <= high`` (``value < high`` when ``open_high``)."""

    low: float | None = None
    high: float | None = None
    open_high: bool = False

    def contains(self, value: float) -> bool:
        if self.low is not None and value < self.low:
            return False
        if self.high is not None and (value >= self.high if self.open_high else value > self.high):
            return False
        return True

    @property
    def problem(self) -> str:
        """The message template of a value outside (``{flag}``, ``{value}``, ``{low}``, ``{high}``)."""
        if self.high is None:
            return "{flag} must be >= {low}"
        if self.open_high:
            return "{flag} {value} must be in [{low}, {high})"
        return "{flag} {value} must be between {low} and {high}"


def at_least(low: float) -> Bounds:
    return Bounds(low)


def between(low: float, high: float) -> Bounds:
    """``low <= value <= high``."""
    return Bounds(low, high)


def half_open(low: float, high: float) -> Bounds:
    """``low <= value < high``."""
    return Bounds(low, high, open_high=True)


@dataclass(frozen=True)
class Rule:
    """What a setting's value must be; None (an "auto" or unset value) is never checked."""

    choices: tuple[str, ...] | None = None
    bounds: Bounds | None = None
    parse: Callable[[Any], Any] | None = None  # raises GalaxySynthError (with its own message) for a bad value
    problem: str | None = None  # the bounds' message, where it says more than the generic one

    def problem_with(self, flag: str, value: Any) -> str | None:
        """One line saying what is wrong with ``value`` for the option ``flag``, or None."""
        if value is None:
            return None
        if self.choices is not None and value not in self.choices:
            return f"{flag} {value!r}: choose from {', '.join(self.choices)}"
        if self.bounds is not None and not self.bounds.contains(value):
            template = self.problem or self.bounds.problem
            return template.format(flag=flag, value=value, low=_number(self.bounds.low), high=_number(self.bounds.high))
        if self.parse is not None:
            try:
                self.parse(value)
            except GalaxySynthError as exc:
                return str(exc)
        return None


def setting(default: Any = None, *, help: str, group: str = "trials", frozen: bool = False,
            choices: Iterable[str] | None = None, bounds: Bounds | None = None, problem: str | None = None,
            parse: Callable[[Any], Any] | None = None, auto: dict[str, Any] | None = None,
            legacy: Any = dataclasses.MISSING, metavar: str | None = None, cli: bool = True, factory: Any = None) -> Any:
    """A settings field with what the CLI, the study and the validator need to know about it.

    ``choices`` / ``bounds`` (``problem``: its message) / ``parse``: the rule :func:`problems` enforces.
    ``auto``: the default of a field left to None, by device (``{"cpu": 32, "gpu": 64}``), see :func:`auto_default`.
    ``frozen``: a resumed or parallel run must use the same value. ``legacy``: the value a study created before
    this setting existed ran with (a resumed old study is checked against it); without one it is not checked.
    """
    choices = tuple(choices) if choices else None
    rule = Rule(choices, bounds, parse, problem) if (choices or bounds or parse) else None
    meta = {"help": help, "group": group, "frozen": frozen, "choices": choices, "rule": rule, "auto": auto,
            "legacy": legacy, "metavar": metavar, "cli": cli}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def flag(name: str) -> str:
    """The command-line option of a field: ``max_mflops`` → ``--max-mflops``."""
    return "--" + name.replace("_", "-")


def problems(settings: Any) -> list[str]:
    """What every declared rule finds wrong with ``settings`` (a dataclass of :func:`setting` fields), in field
    order; a message shared by several fields ("--max-samples and --val-subset must be >= 2") is said once."""
    found: list[str] = []
    for f in dataclasses.fields(settings):
        problem = _problem(f, getattr(settings, f.name))
        if problem and problem not in found:
            found.append(problem)
    return found


def problem_of(settings_class: type, name: str, value: Any) -> str | None:
    """What the rule declared for field ``name`` of ``settings_class`` finds wrong with ``value``, or None."""
    return _problem(next(f for f in dataclasses.fields(settings_class) if f.name == name), value)


def _problem(f: dataclasses.Field, value: Any) -> str | None:
    rule = f.metadata.get("rule")
    return rule.problem_with(flag(f.name), value) if rule is not None else None


def auto_default(f: dataclasses.Field, device_type: str) -> Any:
    """The declared ``auto`` value of field ``f`` on a ``device_type`` ("cpu", "cuda", "mps")."""
    return f.metadata["auto"][CPU if device_type == CPU else ACCELERATOR]


def _number(value: float | None) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
