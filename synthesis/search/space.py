"""The define-by-run search space: one Optuna trial → (:class:`ArchSpec`, :class:`TrainConfig`).

Parameter names are stable (stored in every study): ``n_stages``, ``depth_s{i}``,
``width_s{i}``, ``block``, ``stem_kernel``, ``stem_width``, ``downsample``, ``dropout``,
``optimizer``, ``lr``, ``weight_decay``, ``batch_size``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Callable, Sequence

import optuna

from synthesis import Equivariance, GalaxySynthError
from synthesis.models import BLOCK_TYPES, DOWNSAMPLE_MODES, OPTIMIZERS, ArchSpec, StageSpec, TrainConfig, group_of


@dataclass(frozen=True)
class SearchSpace:
    """Ranges of the search; the defaults follow the seeds (2–4 stages, depth 1–4, widths 8–128)."""

    min_stages: int = 2
    max_stages: int = 4
    max_depth: int = 4
    widths: tuple[int, ...] = (8, 16, 24, 32, 48, 64, 96, 128)
    stem_widths: tuple[int, ...] = (8, 16, 24, 32)
    blocks: tuple[str, ...] = BLOCK_TYPES
    optimizers: tuple[str, ...] = OPTIMIZERS
    batch_sizes: tuple[int, ...] = (32, 64, 128)
    lr_range: tuple[float, float] = (1e-4, 3e-2)
    weight_decay_range: tuple[float, float] = (1e-6, 1e-2)
    max_dropout: float = 0.5

    def to_dict(self) -> dict:
        return asdict(self)

    def params_of(self, spec: ArchSpec, train: TrainConfig) -> dict:
        """The trial parameters that :meth:`suggest` turns into this spec and configuration (its inverse):
        ``study.enqueue_trial(space.params_of(spec, cfg))`` re-runs an architecture as a new trial."""
        params = {"n_stages": len(spec.stages), "block": spec.block, "stem_width": spec.stem_width,
                  "stem_kernel": spec.stem_kernel, "downsample": spec.downsample, "dropout": spec.dropout,
                  "optimizer": train.optimizer, "lr": train.lr, "weight_decay": train.weight_decay,
                  "batch_size": train.batch_size}
        for i, stage in enumerate(spec.stages):
            params[f"depth_s{i}"], params[f"width_s{i}"] = stage.depth, stage.width
        return params

    def suggest(self, trial: optuna.Trial, num_classes: int, image_size: int, n_extra: int,
                in_channels: int = 3) -> tuple[ArchSpec, TrainConfig]:
        # Deep stages need room to downsample: 2**n_stages must fit in the image.
        max_stages = self.max_stages
        while max_stages > self.min_stages and image_size < 2 ** (max_stages + 1):
            max_stages -= 1
        n_stages = trial.suggest_int("n_stages", self.min_stages, max_stages)
        stages = tuple(
            StageSpec(
                depth=trial.suggest_int(f"depth_s{i}", 1, self.max_depth),
                width=trial.suggest_categorical(f"width_s{i}", self.widths),
            )
            for i in range(n_stages)
        )
        spec = ArchSpec(
            num_classes=num_classes,
            stages=stages,
            block=trial.suggest_categorical("block", self.blocks),
            stem_width=trial.suggest_categorical("stem_width", self.stem_widths),
            stem_kernel=trial.suggest_categorical("stem_kernel", (3, 5)),
            downsample=trial.suggest_categorical("downsample", DOWNSAMPLE_MODES),
            dropout=trial.suggest_float("dropout", 0.0, self.max_dropout),
            image_size=image_size,
            n_extra=n_extra,
            in_channels=in_channels,
        )
        train = TrainConfig(
            optimizer=trial.suggest_categorical("optimizer", self.optimizers),
            lr=trial.suggest_float("lr", *self.lr_range, log=True),
            weight_decay=trial.suggest_float("weight_decay", *self.weight_decay_range, log=True),
            batch_size=trial.suggest_categorical("batch_size", self.batch_sizes),
        )
        return spec, train


def reflections_allowed(mirror_pairs: Sequence[tuple[int, int]], allow_flips: bool) -> bool:
    """Whether a network may be blind to mirror flips: not where a flip turns one class into another (mirror-image
    pairs such as spiral_cw/spiral_acw), nor where a chiral class has no partner (flips are off altogether)."""
    return not mirror_pairs and allow_flips


def space_for(equivariant: str, mirror_pairs: Sequence[tuple[int, int]], allow_flips: bool) -> SearchSpace:
    """The search space of a study's ``--equivariant`` and its data (synthesis.data.chirality.mirror_policy):
    off, the ordinary blocks alone (the default space); rotations, c4 too; auto, c4 and, where
    :func:`reflections_allowed`, d4."""
    if equivariant == Equivariance.OFF:
        return SearchSpace()
    reflect = equivariant == Equivariance.AUTO and reflections_allowed(mirror_pairs, allow_flips)
    return SearchSpace(blocks=BLOCK_TYPES + (("c4", "d4") if reflect else ("c4",)))


def refuse_mirror_blind(spec: ArchSpec, mirror_pairs: Sequence[tuple[int, int]], allow_flips: bool,
                        class_names: Sequence[str] = ()) -> None:
    """Raise where a reflection-invariant network (d4) would meet data whose mirror images are other classes: it
    gives an image and its mirror image the same outputs, so it cannot tell a clockwise spiral from an
    anticlockwise one."""
    group = group_of(spec.block)
    if group is not None and group.reflections and not reflections_allowed(mirror_pairs, allow_flips):
        pairs = ", ".join(f"{class_names[a]}/{class_names[b]}" for a, b in mirror_pairs) if class_names else ""
        raise GalaxySynthError(f"a {spec.block} network is blind to mirror flips and these data have mirror-image "
                               f"(or unpaired chiral) classes{' (' + pairs + ')' if pairs else ''}: use c4 (rotations only)")


@dataclass(frozen=True)
class CapFit:
    """A sampled architecture brought under the size caps: what was sampled, what trains, and how far it moved."""

    spec: ArchSpec
    params: int
    flops: int
    sampled: ArchSpec
    sampled_params: int
    sampled_flops: int
    steps: list[str]
    ms: float | None = None  # predicted ms per image, where a time cap asked for it

    @property
    def changed(self) -> bool:
        return bool(self.steps)

    def fits(self, max_params: int | None, max_flops: float | None, max_ms: float | None = None) -> bool:
        return (not max_params or self.params <= max_params) and (not max_flops or self.flops <= max_flops) \
            and (not max_ms or self.ms is None or self.ms <= max_ms)

    def to_dict(self) -> dict:
        return {"sampled": self.sampled.describe(), "sampled_params": self.sampled_params,
                "sampled_flops": self.sampled_flops, "steps": self.steps}


def fit_to_caps(spec: ArchSpec, max_params: int | None, max_flops: float | None,
                widths: tuple[int, ...] = SearchSpace.widths, stem_widths: tuple[int, ...] = SearchSpace.stem_widths,
                max_steps: int = 64, max_ms: float | None = None,
                predict_ms: Callable[[ArchSpec], float] | None = None) -> CapFit:
    """Shrink an architecture that exceeds ``--max-params`` / ``--max-mflops`` / ``--max-ms`` (its ``predict_ms``,
    the latency table's prediction) until it fits, deterministically.

    Why not prune it: a pruned trial tells TPE its region is bad (Optuna issue #2969), so a cap
    would teach the sampler that large is bad, while inside the cap larger networks rank better
    (35% of a 40-trial study's samples were lost that way). Here every sample trains: the sampled
    parameters map to the largest nearby architecture under the caps, and TPE learns the score of
    that. One step at a time: the widest stage one width down (the earliest of equals: it runs at the
    highest resolution); once every stage is at the narrowest width, the deepest stage one block
    shorter; then the stem narrower. Stops when it fits or nothing is left to shrink.
    """
    from synthesis.models import spec_cost

    params, flops = spec_cost(spec)
    sampled, sampled_params, sampled_flops = spec, params, flops
    steps: list[str] = []
    timed = bool(max_ms and predict_ms)

    def over() -> bool:
        return bool((max_params and params > max_params) or (max_flops and flops > max_flops)
                    or (timed and predict_ms(spec) > max_ms))

    while over() and len(steps) < max_steps:
        stages = list(spec.stages)
        narrower = [i for i, s in enumerate(stages) if _below(s.width, widths) is not None]
        if narrower:
            i = max(narrower, key=lambda k: (stages[k].width, -k))
            stages[i] = StageSpec(stages[i].depth, _below(stages[i].width, widths))
            step = f"stage {i} width {spec.stages[i].width}→{stages[i].width}"
        elif any(s.depth > 1 for s in stages):
            i = max(range(len(stages)), key=lambda k: (stages[k].depth, -k))
            stages[i] = StageSpec(stages[i].depth - 1, stages[i].width)
            step = f"stage {i} depth {spec.stages[i].depth}→{stages[i].depth}"
        elif _below(spec.stem_width, stem_widths) is not None:
            spec = replace(spec, stem_width=_below(spec.stem_width, stem_widths))
            steps.append(f"stem width → {spec.stem_width}")
            params, flops = spec_cost(spec)
            continue
        else:
            break
        spec = replace(spec, stages=tuple(stages))
        steps.append(step)
        params, flops = spec_cost(spec)
    return CapFit(spec, params, flops, sampled, sampled_params, sampled_flops, steps, predict_ms(spec) if timed else None)


def _below(value: int, choices: tuple[int, ...]) -> int | None:
    smaller = [c for c in choices if c < value]
    return max(smaller) if smaller else None
