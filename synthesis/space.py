"""The define-by-run search space: one Optuna trial → (:class:`ArchSpec`, :class:`TrainConfig`).

Parameter names are stable (stored in every study): ``n_stages``, ``depth_s{i}``,
``width_s{i}``, ``block``, ``stem_kernel``, ``stem_width``, ``downsample``, ``dropout``,
``optimizer``, ``lr``, ``weight_decay``, ``batch_size``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import optuna

from synthesis.spec import BLOCK_TYPES, DOWNSAMPLE_MODES, OPTIMIZERS, ArchSpec, StageSpec, TrainConfig


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

    def suggest(self, trial: optuna.Trial, num_classes: int, image_size: int, n_extra: int) -> tuple[ArchSpec, TrainConfig]:
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
        )
        train = TrainConfig(
            optimizer=trial.suggest_categorical("optimizer", self.optimizers),
            lr=trial.suggest_float("lr", *self.lr_range, log=True),
            weight_decay=trial.suggest_float("weight_decay", *self.weight_decay_range, log=True),
            batch_size=trial.suggest_categorical("batch_size", self.batch_sizes),
        )
        return spec, train
