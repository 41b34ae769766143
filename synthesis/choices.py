"""Every choice a user makes by name, as a ``StrEnum`` whose values are the strings studies store.

One place for each set of names: the CLI's ``choices``, the settings' validation and the code that
branches on them read the same enum. Values are today's strings, so a study or calibration made by
an earlier release (which stored plain strings) keeps loading, and ``Objective.COMPOSITE ==
"composite"`` holds. This module imports nothing heavy: the command line checks its arguments
before torch is imported.
"""

from __future__ import annotations

from enum import StrEnum


class Objective(StrEnum):
    COMPOSITE = "composite"
    VAL_ACC = "val_acc"
    BALANCED_ACC = "balanced_acc"
    TRAIN_ACC = "train_acc"
    MULTI = "multi"


class Sampler(StrEnum):
    TPE = "tpe"
    RANDOM = "random"


class Pruner(StrEnum):
    AUTO = "auto"
    MEDIAN = "median"
    NONE = "none"


class Strategy(StrEnum):
    TPE = "tpe"
    PROGRESSIVE = "progressive"


class Loss(StrEnum):
    CE = "ce"
    WEIGHTED_CE = "weighted_ce"
    FOCAL = "focal"


class Precision(StrEnum):
    AUTO = "auto"
    FP32 = "fp32"
    BF16 = "bf16"
    FP16 = "fp16"


class Schedule(StrEnum):
    CONSTANT = "constant"
    COSINE = "cosine"
    LINEAR = "linear"


class RankBy(StrEnum):
    """What ranks a study's trials for ``rank``, ``export`` and the report."""

    OBJECTIVE = "objective"
    PROXY = "proxy"
    VAL_ACC = "val_acc"
    BALANCED_ACC = "balanced_acc"
    TRAIN_ACC = "train_acc"


def names(enum: type[StrEnum]) -> tuple[str, ...]:
    """The values of a choice, in declaration order (for ``argparse`` choices and messages)."""
    return tuple(member.value for member in enum)
