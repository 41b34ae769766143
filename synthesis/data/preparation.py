"""The one data-preparation step: a study's data and split, normaliser, extra-input scaler, tensors on a device.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch

from synthesis.data.chirality import mirror_policy
from synthesis.data.dataset import ClassMap, GalaxyImages, load_dataset
from synthesis.data.fits import parse_hdu
from synthesis.data.schema import load_schema
from synthesis.data.preprocessing import (
    BandMapping,
    ExtraScaler,
    Normalizer,
    PreprocessingConfig,
)
from synthesis.data.settings import DataSettings
from synthesis.data.sources import SourceOptions
from synthesis.data.splits import stratified_split, stratified_subset


@dataclass
class TensorSplit:
    """One split on the device: cached pixels [N,C,H,W] (uint8 or float16), labels, standardised extra inputs,
    and the vote fractions [N, classes] (--soft-labels) or vote counts [N, answers] (--schema) where the catalogue
    has them."""

    x: torch.Tensor
    y: torch.Tensor
    extra: torch.Tensor
    soft: torch.Tensor | None = None
    votes: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.y.shape[0])


def data_plan(data: GalaxyImages, settings: DataSettings) -> dict[str, list[int]]:
    """Split indices (train/val/test) and the bounded trial subsets, all from the seed."""
    split = stratified_split(data.labels, seed=settings.seed)
    trial_train = stratified_subset(split["train"], data.labels, settings.max_samples, seed=settings.seed + 1)
    trial_val = stratified_subset(split["val"], data.labels, settings.val_subset, seed=settings.seed + 2)
    return {**{k: v.tolist() for k, v in split.items()}, "trial_train": trial_train.tolist(), "trial_val": trial_val.tolist()}


def load_study_data(settings: DataSettings) -> GalaxyImages:
    """Load and validate the dataset (``settings`` resolved) before anything touches the study storage."""
    return load_dataset(
        settings.data,
        size=settings.size,
        crop=settings.crop,
        class_map=ClassMap.parse(settings.merge, settings.drop),
        cache_dir=settings.cache_dir,
        extra_columns=settings.extra_columns,
        options=SourceOptions(bands=settings.bands, hdu=parse_hdu(settings.hdu), soft_labels=settings.soft_labels,
                              schema=load_schema(settings.schema) if settings.schema else None, keep_columns=settings.keep_columns),
        synthetic_n=settings.synthetic_n,
        synthetic_seed=settings.seed,
        progress=settings.progress,
    )


@dataclass
class PreparedData:
    """A study's data with its split and the training split's preprocessing statistics."""

    data: GalaxyImages
    plan: dict[str, list[int]]
    normalizer: Normalizer
    extra_scaler: ExtraScaler
    mirror_pairs: list[tuple[int, int]]
    allow_flips: bool

    @classmethod
    def from_plan(cls, data: GalaxyImages, plan: dict[str, list[int]], stats: dict[str, Any] | None = None,
                  band_mapping: str = "asinh") -> PreparedData:
        """``stats``: the statistics a study stored when it was created (else computed from the train split:
        for FITS fluxes first the ``band_mapping``, then the mean and std of the mapped training pixels)."""
        train = np.asarray(plan["train"])
        if stats:
            config = PreprocessingConfig.from_dict(stats, image_size=data.size, crop=data.crop, class_names=data.class_names,
                                                   extra_names=data.extra_names)
            normalizer, scaler = config.normalizer(), config.extra_scaler()
        else:
            mapping = BandMapping.fit(data.images, train, band_mapping, data.storage) if data.storage else None
            normalizer = Normalizer.fit(data.images, train, mapping=mapping)
            scaler = ExtraScaler.fit(data.extras[train])
        pairs, allow_flips = mirror_policy(data.class_names)
        return cls(data, plan, normalizer, scaler, pairs, allow_flips)

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.data.class_names

    @property
    def num_classes(self) -> int:
        return len(self.data.class_names)

    @property
    def image_size(self) -> int:
        return self.data.size

    @property
    def n_extra(self) -> int:
        return int(self.data.extras.shape[1])

    @property
    def in_channels(self) -> int:
        return int(self.data.images.shape[-1])

    @property
    def preprocessing(self) -> PreprocessingConfig:
        """The one preprocessing config of this study's data (what weights files and model cards carry)."""
        names = self.data.class_names
        mapping = self.normalizer.mapping
        return PreprocessingConfig(
            image_size=self.data.size, crop=self.data.crop, channels=tuple(self.data.channels),
            pixels="float16" if mapping is not None else "uint8",
            band_mapping=mapping.to_dict() if mapping is not None else None, fits=self.data.fits,
            mean=tuple(self.normalizer.mean), std=tuple(self.normalizer.std), extra_names=tuple(self.data.extra_names),
            extra_mean=tuple(self.extra_scaler.mean), extra_std=tuple(self.extra_scaler.std), class_names=tuple(names),
            mirror_pairs=tuple((names[a], names[b]) for a, b in self.mirror_pairs), flips_allowed=self.allow_flips)

    def statistics(self) -> dict[str, Any]:
        """What a study stores so that every worker and every later command normalises alike."""
        return self.preprocessing.to_dict()

    def split(self, name: str, device: torch.device) -> TensorSplit:
        """The rows of ``plan[name]`` (e.g. "trial_train", "train", "test") as tensors on ``device``."""
        idx = np.asarray(self.plan[name])
        data = self.data
        x = torch.from_numpy(np.ascontiguousarray(np.asarray(data.images[idx]).transpose(0, 3, 1, 2))).to(device)
        y = torch.from_numpy(np.asarray(data.labels[idx])).to(device)
        extra = torch.from_numpy(self.extra_scaler.transform(np.asarray(data.extras[idx]))).to(device)
        soft, votes = (torch.from_numpy(np.asarray(a[idx], dtype=np.float32)).to(device) if a is not None else None
                       for a in (data.soft, data.votes))
        return TensorSplit(x, y, extra, soft, votes)

    def training_kwargs(self) -> dict[str, Any]:
        """The arguments :func:`synthesis.training.train_model` takes from the data."""
        return {"normalizer": self.normalizer, "num_classes": self.num_classes, "mirror_pairs": self.mirror_pairs,
                "allow_flips": self.allow_flips}


@dataclass
class TrialData(PreparedData):
    """Prepared data plus the trial subsets, resident on the device for every trial of a run."""

    train: TensorSplit
    val: TensorSplit
    device: torch.device

    @classmethod
    def on_device(cls, prep: PreparedData, device: torch.device) -> TrialData:
        base = {f.name: getattr(prep, f.name) for f in fields(PreparedData)}
        return cls(**base, train=prep.split("trial_train", device), val=prep.split("trial_val", device), device=device)


def build_trial_data(data: GalaxyImages, plan: dict[str, list[int]], device: torch.device,
                     stats: dict[str, Any] | None = None) -> TrialData:
    return TrialData.on_device(PreparedData.from_plan(data, plan, stats), device)
