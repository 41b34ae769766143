"""What turns cached pixels and extra columns into network inputs: per-channel normalisation and extra-input scaling, fitted on the training split.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from synthesis import BandMapping as BandMappingChoice, names

if TYPE_CHECKING:  # torch only where tensors are made: predict's decode processes and its card reading import this without it
    import torch

BAND_MAPPINGS = names(BandMappingChoice)  # the names; the class below is the fitted map


def asinh(v: torch.Tensor) -> torch.Tensor:
    """asinh from ops every exporter knows (ONNX's TorchScript path has no aten::asinh), odd-symmetric so that
    large negative values lose no precision; training and the packaged model use this same function."""
    a = v.abs()
    return v.sign() * (a + (a * a + 1.0).sqrt()).log()


def cached_to_units(pixels: np.ndarray, mapping: BandMapping | None, dtype: type = np.float64) -> np.ndarray:
    """Cached pixels in the model's input units before standardisation: 8-bit to [0, 1] (in ``dtype``), float16
    fluxes through their storage scale and the band mapping."""
    if mapping is None:
        return pixels.astype(dtype) / 255.0
    return mapping.numpy(pixels.astype(np.float32) * np.asarray(mapping.storage, np.float32))


@dataclass(frozen=True)
class BandMapping:
    """A per-band intensity map for float fluxes (FITS), fitted on training pixels and stored with the study.

    ``raw = cached × storage`` (the cache's float16 encoding undone), then per band ``b``:
    ``asinh``: ``asinh((raw − offset_b) / scale_b)`` — linear within the noise, logarithmic in bright
    cores, as survey colour images are stretched; ``robust``: ``(raw − offset_b) / scale_b`` — linear.
    ``offset`` is the training pixels' median (the sky), ``scale`` their robust noise (1.4826 × MAD).
    """

    kind: str
    offset: tuple[float, ...]
    scale: tuple[float, ...]
    storage: tuple[float, ...]

    @classmethod
    def fit(cls, images: np.ndarray, rows: np.ndarray, kind: str, storage: Sequence[float],
            max_pixels: int = 2_000_000, seed: int = 0) -> BandMapping:
        rng = np.random.default_rng(seed)
        channels = images.shape[-1]
        per_image = max(1, max_pixels // max(1, len(rows)))
        samples = []
        for start in range(0, len(rows), 512):
            block = np.asarray(images[np.sort(rows[start:start + 512])], dtype=np.float32).reshape(-1, channels)
            take = rng.choice(len(block), size=min(len(block), per_image * min(512, len(rows) - start)), replace=False)
            samples.append(block[take])
        pix = np.concatenate(samples) * np.asarray(storage, dtype=np.float32)
        median = np.median(pix, axis=0)
        mad = 1.4826 * np.median(np.abs(pix - median), axis=0)
        mad = np.where(mad > 0, mad, np.maximum(np.std(pix, axis=0), 1e-12))
        return cls(kind, tuple(map(float, median)), tuple(map(float, mad)), tuple(map(float, storage)))

    def numpy(self, raw: np.ndarray) -> np.ndarray:
        v = (raw - np.asarray(self.offset, np.float32)) / np.asarray(self.scale, np.float32)
        return np.arcsinh(v) if self.kind == "asinh" else v

    def torch(self, raw: torch.Tensor, offset: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        v = (raw - offset) / scale
        return asinh(v) if self.kind == "asinh" else v

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "offset": list(self.offset), "scale": list(self.scale), "storage": list(self.storage)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BandMapping:
        return cls(data["kind"], tuple(data["offset"]), tuple(data["scale"]), tuple(data["storage"]))


@dataclass
class Normalizer:
    """Cached pixels → network input: 8-bit images scaled to [0, 1], or float fluxes through their
    :class:`BandMapping`; then the training split's per-channel mean and std."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    mapping: BandMapping | None = None

    @classmethod
    def fit(cls, images: np.ndarray, indices: np.ndarray | None = None, chunk: int = 4096,
            mapping: BandMapping | None = None) -> Normalizer:
        """Statistics of the rows ``indices`` of images [N, H, W, C], read in chunks: a memory-mapped cache
        of 100k images is never copied whole, nor converted to float at once."""
        rows = np.arange(len(images)) if indices is None else np.asarray(indices)
        channels = images.shape[-1]
        total = np.zeros(channels)
        squares = np.zeros(channels)
        count = 0
        for start in range(0, len(rows), chunk):
            pix = np.asarray(images[rows[start:start + chunk]]).reshape(-1, channels)
            pix = cached_to_units(pix, mapping).astype(np.float64)
            total += pix.sum(axis=0)
            squares += (pix**2).sum(axis=0)
            count += len(pix)
        mean = total / max(count, 1)
        std = np.maximum(np.sqrt(np.maximum(squares / max(count, 1) - mean**2, 0.0)), 1e-3)
        return cls(tuple(float(v) for v in mean), tuple(float(v) for v in std), mapping)


    def _stats(self, device: torch.device) -> tuple[torch.Tensor, ...]:
        # Made once per device, not per batch: on a GPU every fresh host tensor is a copy.
        cache = self.__dict__.setdefault("_on_device", {})
        if device not in cache:
            import torch

            as_t = lambda v: torch.tensor(v, dtype=torch.float32, device=device).view(1, -1, 1, 1)  # noqa: E731
            m = self.mapping
            cache[device] = (as_t(self.mean), as_t(self.std)) + ((as_t(m.storage), as_t(m.offset), as_t(m.scale))
                                                                 if m is not None else ())
        return cache[device]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        stats = self._stats(x.device)
        mean, std = stats[:2]
        if self.mapping is None:
            return (x.float() / 255.0 - mean) / std
        storage, offset, scale = stats[2:]
        return (self.mapping.torch(x.float() * storage, offset, scale) - mean) / std

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mean": list(self.mean), "std": list(self.std)}
        if self.mapping is not None:
            out["mapping"] = self.mapping.to_dict()
        return out


@dataclass
class ExtraScaler:
    """Standardise extra numeric inputs (z, z_err…) with training-split statistics."""

    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)

    @classmethod
    def fit(cls, extras: np.ndarray) -> ExtraScaler:
        if extras.shape[1] == 0:
            return cls()
        return cls(extras.mean(axis=0).tolist(), np.maximum(extras.std(axis=0), 1e-6).tolist())

    def transform(self, extras: np.ndarray) -> np.ndarray:
        if not self.mean:
            return extras.astype(np.float32)
        return ((extras - np.array(self.mean)) / np.array(self.std)).astype(np.float32)


@dataclass(frozen=True)
class PreprocessingConfig:
    """Everything between a file on disk and the network's input, written once when a study is created.

    Like timm's pretrained config, one object travels: the study stores it (attrs ``preprocessing``),
    trials and full training normalise with it, every weights file carries it
    (:mod:`synthesis.models.package`), the model card prints it and ``predict`` reads it back.
    ``pixels``: how the cache stores a pixel — ``uint8`` (0-255, scaled by 1/255 before the
    per-channel mean/std) or ``float16`` (band values after ``band_mapping``, then mean/std).
    """

    image_size: int
    crop: float
    channels: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    extra_names: tuple[str, ...] = ()
    extra_mean: tuple[float, ...] = ()
    extra_std: tuple[float, ...] = ()
    class_names: tuple[str, ...] = ()
    mirror_pairs: tuple[tuple[str, str], ...] = ()
    flips_allowed: bool = True
    pixels: str = "uint8"
    band_mapping: dict | None = None  # BandMapping.to_dict() for float fluxes
    fits: dict | None = None  # FitsLayout.to_dict(): which HDU and bands predict reads

    @property
    def n_channels(self) -> int:
        return len(self.channels)

    def normalizer(self) -> Normalizer:
        mapping = BandMapping.from_dict(self.band_mapping) if self.band_mapping else None
        return Normalizer(tuple(self.mean), tuple(self.std), mapping)

    def extra_scaler(self) -> ExtraScaler:
        return ExtraScaler(list(self.extra_mean), list(self.extra_std))

    def describe_input(self) -> str:
        """How to make an input the packaged model accepts, in words (the model card's line)."""
        crop = "the whole image (no crop)" if self.crop >= 1 else f"centre-crop {self.crop:.0%} of each side"
        if self.pixels == "uint8":
            return f"{crop}, resize to {self.image_size}² (bilinear), scale to [0, 1]; model.ts/model.onnx normalise inside"
        kind = (self.band_mapping or {}).get("kind", "?")
        return (f"FITS fluxes in bands {', '.join(self.channels)} as float32 [N, {self.n_channels}, H, W], NaN filled with "
                f"each band's median, {crop}, resize to {self.image_size}² (bilinear); model.ts/model.onnx apply the "
                f"{kind} band mapping and the normalisation inside")

    def to_dict(self) -> dict[str, Any]:
        out = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}
        out["mirror_pairs"] = [list(p) for p in self.mirror_pairs]
        # the two keys studies stored before this config existed, kept so that older releases read it too
        out["normalizer"] = self.normalizer().to_dict()
        out["extra_scaler"] = {"mean": list(self.extra_mean), "std": list(self.extra_std)}
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], **fill: Any) -> PreprocessingConfig:
        """From a stored dict; a study made before the config existed stored only ``normalizer`` and
        ``extra_scaler``: ``fill`` gives the rest (image size, crop, class names…)."""
        values = {**fill, **{k: v for k, v in data.items() if k in {f.name for f in fields(cls)}}}
        if "mean" not in values:
            values["mean"], values["std"] = data["normalizer"]["mean"], data["normalizer"]["std"]
            values["extra_mean"], values["extra_std"] = data["extra_scaler"]["mean"], data["extra_scaler"]["std"]
        values.setdefault("channels", ("R", "G", "B")[: len(values["mean"])])
        tuples = {"channels", "mean", "std", "extra_names", "extra_mean", "extra_std", "class_names"}
        for k in tuples & set(values):
            values[k] = tuple(values[k])
        values["mirror_pairs"] = tuple(tuple(p) for p in values.get("mirror_pairs", ()))
        return cls(**values)
