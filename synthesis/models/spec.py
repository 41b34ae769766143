"""Architecture and training specs: small, frozen, JSON-serialisable.

An :class:`ArchSpec` is the single source of truth for building a model: the study stores it
with every trial, export writes it as ``arch.json``, and :func:`synthesis.models.build_model`
turns it back into the same ``nn.Module``. Training hyper-parameters live apart in
:class:`TrainConfig` because the same architecture is trained with different budgets
(2-epoch trial, full training).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from synthesis import Schedule, names
from synthesis import GalaxySynthError

SPEC_VERSION = 1


BLOCK_TYPES = ("plain", "residual", "inverted")  # what the search samples by default


@dataclass(frozen=True)
class SymmetryGroup:
    """Quarter turns of the image plane (C4), with mirror flips too (D4): what an equivariant network's
    features transform under. Element ``g = 4·m + r`` is the map "flip left-right ``m`` times, then turn
    ``r`` quarter turns anticlockwise", as :func:`synthesis.training.views.view_of` turns an image."""

    name: str
    reflections: bool

    @property
    def order(self) -> int:
        return 8 if self.reflections else 4

    @staticmethod
    def element(g: int) -> tuple[int, bool]:
        """(quarter turns, mirrored) of element ``g``."""
        return g % 4, g >= 4

    def multiply(self, g: int, h: int) -> int:
        """The element of ``g ∘ h`` (apply h, then g): R^a F^m R^b F^n = R^(a ± b) F^(m + n), as F R = R⁻¹ F."""
        (a, m), (b, n) = self.element(g), self.element(h)
        return (a - b if m else a + b) % 4 + 4 * (m != n)

    def inverse(self, g: int) -> int:
        turns, mirrored = self.element(g)
        return g if mirrored else (-turns) % 4  # a reflection undoes itself


EQUIVARIANT_BLOCKS = {"c4": SymmetryGroup("C4", reflections=False), "d4": SymmetryGroup("D4", reflections=True)}
"""Residual blocks of group convolutions, invariant after the network's group pooling: to quarter turns (c4), and to
quarter turns and mirror flips (d4: blind to a spiral's winding sense, so only for data without mirror-image classes)."""


def group_of(block: str) -> SymmetryGroup | None:
    """The symmetry group of an equivariant block type, None for an ordinary one."""
    return EQUIVARIANT_BLOCKS.get(block)


DOWNSAMPLE_MODES = ("maxpool", "stride")


OPTIMIZERS = ("adamw", "adam", "sgd", "rmsprop")


SCHEDULES = names(Schedule)


@dataclass(frozen=True)
class StageSpec:
    """One resolution stage: ``depth`` blocks of ``width`` channels, downsampled on entry."""

    depth: int
    width: int


@dataclass(frozen=True)
class OutputLayout:
    """How a vote network's last layer splits (``--schema``): ``classes`` class logits (the label column's classes;
    0 when the class is a question's answer), then one Dirichlet per question, ``answers[q]`` concentrations each.
    ``class_question``: the question whose Dirichlet mean is the class (None: the class logits are)."""

    classes: int
    answers: tuple[int, ...]
    class_question: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "answers", tuple(int(a) for a in self.answers))

    @property
    def outputs(self) -> int:
        return self.classes + sum(self.answers)

    def to_dict(self) -> dict[str, Any]:
        return {"classes": self.classes, "answers": list(self.answers), "class_question": self.class_question}

    @classmethod
    def of(cls, schema: dict[str, Any] | None, num_classes: int) -> OutputLayout | None:
        """The layout for a data set's schema (``GalaxyImages.schema``, a ``QuestionSchema.to_dict()``); None: no
        schema, a classifier."""
        if not schema:
            return None
        names = [q["name"] for q in schema["question"]]
        index = names.index(schema["class_question"]) if schema.get("class_question") else None
        return cls(0 if index is not None else num_classes, tuple(len(q["answers"]) for q in schema["question"]), index)


@dataclass(frozen=True)
class ArchSpec:
    """A CNN for ``image_size``² RGB images, optionally joined by ``n_extra`` numeric inputs."""

    num_classes: int
    stages: tuple[StageSpec, ...]
    block: str = "residual"
    stem_width: int = 16
    stem_kernel: int = 3
    downsample: str = "maxpool"
    dropout: float = 0.0
    image_size: int = 64
    in_channels: int = 3
    n_extra: int = 0
    extra_hidden: int = 16
    version: int = SPEC_VERSION
    votes: OutputLayout | None = None  # --schema: the vote head's layout; None: a classifier

    def __post_init__(self) -> None:
        # Frozen dataclass: coerce stage dicts/lists (from JSON) into a tuple of StageSpec.
        stages = tuple(s if isinstance(s, StageSpec) else StageSpec(**s) for s in self.stages)
        object.__setattr__(self, "stages", stages)
        if isinstance(self.votes, dict):
            object.__setattr__(self, "votes", OutputLayout(**self.votes))
        self.validate()

    @property
    def outputs(self) -> int:
        """The last layer's width: the classes, or the vote head's class logits and concentrations."""
        return self.votes.outputs if self.votes is not None else self.num_classes

    def validate(self) -> None:
        problems = []
        if self.num_classes < 2:
            problems.append(f"num_classes={self.num_classes} (need >= 2)")
        if not self.stages:
            problems.append("no stages")
        if self.block not in BLOCK_TYPES + tuple(EQUIVARIANT_BLOCKS):
            problems.append(f"block={self.block!r} (choose from {BLOCK_TYPES + tuple(EQUIVARIANT_BLOCKS)})")
        group = group_of(self.block)
        if group and any(w % group.order for w in (self.stem_width, *(s.width for s in self.stages))):
            problems.append(f"a {self.block} network's widths count channels, {group.order} per field of {group.name}: "
                            f"every width must be a multiple of {group.order}")
        if self.downsample not in DOWNSAMPLE_MODES:
            problems.append(f"downsample={self.downsample!r} (choose from {DOWNSAMPLE_MODES})")
        if self.stem_kernel not in (3, 5, 7):
            problems.append(f"stem_kernel={self.stem_kernel} (3, 5 or 7)")
        if not 0.0 <= self.dropout < 1.0:
            problems.append(f"dropout={self.dropout} (0 <= dropout < 1)")
        if any(s.depth < 1 or s.width < 1 for s in self.stages):
            problems.append("every stage needs depth >= 1 and width >= 1")
        if self.image_size < 2 ** len(self.stages):
            problems.append(f"image_size={self.image_size} too small for {len(self.stages)} downsamples")
        if self.votes is not None and (self.votes.answers[self.votes.class_question] if self.votes.class_question is not None
                                       else self.votes.classes) != self.num_classes:
            problems.append(f"num_classes={self.num_classes} does not match the vote head {self.votes.to_dict()}")
        if self.version != SPEC_VERSION:
            problems.append(f"spec version {self.version} (this galaxy-synth reads {SPEC_VERSION})")
        if problems:
            raise GalaxySynthError("invalid architecture spec: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        # a classifier's dict (and so its spec hash) stays what it was before vote heads existed
        return {**data, "votes": self.votes.to_dict()} if self.votes is not None else \
            {k: v for k, v in data.items() if k != "votes"}

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ArchSpec:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise GalaxySynthError(f"invalid architecture spec: unknown keys {sorted(unknown)}")
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> ArchSpec:
        return cls.from_dict(json.loads(text))

    def spec_hash(self) -> str:
        """Stable short id of the architecture (same spec → same hash, across runs)."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:12]

    def describe(self) -> str:
        """One-line summary for tables: block type, stage depths×widths, downsampling."""
        stages = " ".join(f"{s.depth}x{s.width}" for s in self.stages)
        return f"{self.block}[{stages}] stem{self.stem_kernel}/{self.stem_width} {self.downsample} do{self.dropout:.2f}"


@dataclass(frozen=True)
class TrainConfig:
    """How to train: optimiser, schedule and loss. Epoch count is passed per run."""

    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 64
    momentum: float = 0.9
    schedule: str = "constant"  # "constant" | "cosine" | "linear", decaying to zero over the run's own steps
    warmup: float = 0.0  # fraction of the run's steps with a linear LR warm-up before the schedule
    loss: str = "ce"  # "ce" | "weighted_ce" | "focal"
    label_smoothing: float = 0.0
    augment: bool = True
    noise_std: float = 0.02
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise GalaxySynthError(f"unknown optimizer {self.optimizer!r} (choose from {OPTIMIZERS})")
        if self.schedule not in SCHEDULES:
            raise GalaxySynthError(f"unknown schedule {self.schedule!r} (choose from {', '.join(SCHEDULES)})")
        if not 0.0 <= self.warmup < 1.0:
            raise GalaxySynthError(f"warmup {self.warmup} must be a fraction of the run in [0, 1)")
        if self.loss not in ("ce", "weighted_ce", "focal"):
            raise GalaxySynthError(f"unknown loss {self.loss!r} (ce, weighted_ce or focal)")
        if self.lr <= 0 or self.batch_size < 1:
            raise GalaxySynthError("lr must be > 0 and batch_size >= 1")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def replace(self, **changes: Any) -> TrainConfig:
        return TrainConfig.from_dict({**self.to_dict(), **changes})


REFERENCE_NAMES = ("resnet18", "mobilenet_v3_small", "efficientnet_b0")


@dataclass(frozen=True)
class ReferenceSpec:
    """A standard architecture from torchvision's builders (:mod:`synthesis.models.references`), adapted to small
    images as practitioners do: the architectures a user would otherwise train, put beside the search's."""

    reference: str
    num_classes: int
    image_size: int = 64
    in_channels: int = 3
    n_extra: int = 0
    extra_hidden: int = 16

    def __post_init__(self) -> None:
        if self.reference not in REFERENCE_NAMES:
            raise GalaxySynthError(f"unknown reference architecture {self.reference!r} (choose from {', '.join(REFERENCE_NAMES)})")
        if self.num_classes < 2:
            raise GalaxySynthError(f"invalid architecture spec: num_classes={self.num_classes} (need >= 2)")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True)

    def spec_hash(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:12]

    def describe(self) -> str:
        return f"{self.reference} (torchvision, small-image stem)"


ModelSpec = ArchSpec | ReferenceSpec


def model_spec_from_dict(data: dict[str, Any]) -> ModelSpec:
    """The spec a stored ``arch`` dict describes: a searched :class:`ArchSpec` or a :class:`ReferenceSpec`."""
    if "reference" in data:
        known = {f.name for f in fields(ReferenceSpec)}
        return ReferenceSpec(**{k: v for k, v in data.items() if k in known})
    return ArchSpec.from_dict(data)
