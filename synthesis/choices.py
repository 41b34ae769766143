"""Every choice a user makes by name, as a ``StrEnum`` whose values are the strings studies store.

One place for each set of names: the CLI's ``choices``, the settings' validation and the code that
branches on them read the same enum. Values are today's strings, so a study or calibration made by
an earlier release (which stored plain strings) keeps loading, and ``Objective.COMPOSITE ==
"composite"`` holds. This module imports nothing heavy: the command line checks its arguments
before torch is imported.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Objective(StrEnum):
    COMPOSITE = "composite"
    VAL_ACC = "val_acc"
    BALANCED_ACC = "balanced_acc"
    TRAIN_ACC = "train_acc"
    MULTI = "multi"
    FRACTION_MAE = "val_fraction_mae"


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
    CALIBRATING = "calibrating"


class Equivariance(StrEnum):
    """``--equivariant``: which group-equivariant blocks the search space offers beside the ordinary ones."""

    OFF = "off"
    ROTATIONS = "rotations"  # c4: quarter turns
    AUTO = "auto"  # c4, and d4 (quarter turns and mirror flips) where the data have no mirror-image classes


class Block(StrEnum):
    """The block types of a network (synthesis.models.spec: BLOCK_TYPES and EQUIVARIANT_BLOCKS)."""

    PLAIN = "plain"
    RESIDUAL = "residual"
    INVERTED = "inverted"
    C4 = "c4"
    D4 = "d4"


class Cost(StrEnum):
    """``--cost``: what the cost front, its knee and ``--objective multi``'s second objective count."""

    TIME = "time"  # predicted ms per image on one CPU thread (synthesis.models.latency)
    FLOPS = "flops"  # forward FLOPs per image (the cost axis of studies made before --cost)


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


class BandMapping(StrEnum):
    """The per-band intensity map of FITS fluxes (synthesis.data.preprocessing.BandMapping fits it)."""

    ASINH = "asinh"
    ROBUST = "robust"


class RankBy(StrEnum):
    """What ranks a study's trials for ``rank``, ``export`` and the report."""

    OBJECTIVE = "objective"
    PROXY = "proxy"
    VAL_ACC = "val_acc"
    BALANCED_ACC = "balanced_acc"
    TRAIN_ACC = "train_acc"


@dataclass(frozen=True)
class ObjectiveInfo:
    """What an objective is: the table every module reads (one place, not a string compared in eight)."""

    label: str  # short, for bars and plots
    words: str  # what the value is, for a sentence
    metric: str  # the trial metric it is made from ("proxy": the calibrated composite of all metrics)
    calibrated: bool  # needs a proxy calibration
    multi: bool = False  # a second objective (parameter count, minimised): a Pareto front, no pruning

    @property
    def directions(self) -> list[str]:
        return ["maximize", "minimize"] if self.multi else ["maximize"]


OBJECTIVES = {
    Objective.COMPOSITE: ObjectiveInfo("proxy", "composite proxy score", "proxy", calibrated=True),
    Objective.VAL_ACC: ObjectiveInfo("val acc", "validation accuracy", "val_acc", calibrated=False),
    Objective.BALANCED_ACC: ObjectiveInfo("val bal acc", "validation balanced accuracy", "val_balanced_acc", calibrated=False),
    Objective.TRAIN_ACC: ObjectiveInfo("train acc", "training accuracy (uncalibrated)", "train_acc", calibrated=False),
    Objective.MULTI: ObjectiveInfo("proxy", "composite proxy score and parameter count", "proxy", calibrated=True, multi=True),
    # maximised as its negative (every trial value is maximised): −(mean over questions of |predicted − voted fraction|)
    Objective.FRACTION_MAE: ObjectiveInfo("−frac MAE", "negative validation vote-fraction error", "val_fraction_mae",
                                          calibrated=False),
}


def objective_info(name: str | None) -> ObjectiveInfo:
    """The table row of an objective name (as stored in a study); the composite for studies that predate the choice."""
    return OBJECTIVES[Objective(name or Objective.COMPOSITE)]


def names(enum: type[StrEnum]) -> tuple[str, ...]:
    """The values of a choice, in declaration order (for ``argparse`` choices and messages)."""
    return tuple(member.value for member in enum)
