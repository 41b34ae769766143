"""``galaxy-synth predict``: run an exported model folder on image files.

The model is rebuilt from ``arch.json`` + ``model.pt`` (``weights_only=True``: loading never
runs code from the file) and the card's normalisation, i.e. exactly what ``model.ts`` contains.
Images get the card's centre-crop and resize. ``tta=True`` averages the softmax over the
dihedral group — 4 rotations × optional mirror flip — and, as in training, a flip swaps the
probabilities of mirror-image classes (clockwise ↔ anticlockwise spirals); where a chiral class
has no mirror partner, flips are left out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from synthesis.data.decode import IMAGE_EXTENSIONS, decode_image
from synthesis.data.fits import FITS_EXTENSIONS, FitsLayout, decode_fits
from synthesis.data.preprocessing import ExtraScaler, PreprocessingConfig
from synthesis.errors import DataError
from synthesis.hardware.device import autocast
from synthesis.models.package import MODEL_FILES, PackagedModel, fused_for_inference, load_model
from synthesis.models.spec import ArchSpec, model_spec_from_dict
from synthesis.training.views import dihedral_views, mirror_permutation, view_logits


@dataclass
class LoadedModel:
    model: PackagedModel
    card: dict[str, Any]
    spec: ArchSpec
    config: PreprocessingConfig

    @cached_property
    def inference_model(self) -> PackagedModel:
        """What predict runs: ``model`` with its batch norms folded into the convolutions (same outputs up to
        rounding, faster); ``model`` itself stays as trained (its parameters, its modules)."""
        return fused_for_inference(self.model)

    @property
    def is_fits(self) -> bool:
        return self.config.pixels != "uint8"

    @property
    def class_names(self) -> list[str]:
        return list(self.card["class_names"])

    @property
    def extra_names(self) -> list[str]:
        return list(self.card["extra_inputs"]["names"])


def load_model_dir(folder: str | Path) -> LoadedModel:
    """Load an exported model folder; any missing or corrupt piece is one DataError naming it."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"model folder not found: {folder}")
    missing = [f for f in MODEL_FILES if not (folder / f).is_file()]
    if missing:
        raise DataError(f"{folder} is not a complete exported model: {missing[0]} is missing (re-run galaxy-synth export)")
    try:
        card = json.loads((folder / "card.json").read_text())
        spec = model_spec_from_dict(json.loads((folder / "arch.json").read_text()))
        if card["input"].get("config"):  # cards since the one preprocessing config: it says everything
            config = PreprocessingConfig.from_dict(card["input"]["config"])
        else:  # older cards: 8-bit RGB, the normalisation and crop beside
            norm = card["input"]["normalisation"]
            config = PreprocessingConfig(image_size=spec.image_size, crop=float(card["input"]["crop_fraction"]),
                                         channels=("R", "G", "B"), mean=tuple(norm["mean"]), std=tuple(norm["std"]))
        normalizer = config.normalizer()
        scaler = ExtraScaler(list(card["extra_inputs"]["mean"]), list(card["extra_inputs"]["std"]))
        card["class_names"], card["input"]["crop_fraction"]  # noqa: B018 — required keys
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise DataError(f"corrupt card.json or arch.json in {folder}: {type(exc).__name__}: {exc}") from None
    try:
        net, _, _ = load_model(folder / "model.pt", spec)  # the one weights format, or an older bare state dict
    except (RuntimeError, TypeError, AttributeError, KeyError) as exc:
        raise DataError(f"model.pt in {folder} does not match its arch.json: {str(exc).splitlines()[0][:200]}") from None
    except Exception as exc:  # unpickling errors come in many types; none may pass silently
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"corrupt model.pt in {folder}: {first[:200]}") from None
    temperature = (card.get("probability_calibration") or {}).get("temperature", 1.0)  # older cards: raw softmax
    return LoadedModel(PackagedModel(net, normalizer, scaler, spec.n_extra, temperature).eval(), card, spec, config)


def collect_images(paths: Sequence[str | Path]) -> list[Path]:
    """Image files named directly, plus image files found (recursively) in named folders."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.is_file() and (f.suffix.lower() in IMAGE_EXTENSIONS or f.name.lower().endswith(FITS_EXTENSIONS)))
        elif p.is_file():
            files.append(p)
        else:
            raise DataError(f"image or folder not found: {p}")
    if not files:
        raise DataError(f"no image files ({', '.join(sorted(IMAGE_EXTENSIONS + FITS_EXTENSIONS))}) in {', '.join(map(str, paths))}")
    return files


EXTRAS_FALLBACK = "training-set means (no --extra given)"


def read_extras(csv: str | Path | None, files: Sequence[Path], names: Sequence[str],
                fallback: Sequence[float] | None = None) -> np.ndarray:
    """The model's extra inputs per file, from a CSV with a 'file' (name or path) or 'id' (stem) column.

    Without a CSV, ``fallback`` (the training-set means from the card) is used for every image, and
    the caller flags it; with no fallback either, it is one line saying what to pass.
    """
    if not names:
        return np.zeros((len(files), 0), dtype=np.float32)
    if csv is None:
        if fallback is None:
            raise DataError(f"this model needs extra inputs {', '.join(names)}: pass --extra CSV with a 'file' or 'id' column")
        return np.tile(np.asarray(fallback, dtype=np.float32), (len(files), 1))
    try:
        df = pd.read_csv(csv)
    except (OSError, pd.errors.EmptyDataError, pd.errors.ParserError) as exc:
        raise DataError(f"cannot read --extra {csv}: {str(exc).splitlines()[0]}") from None
    absent = [n for n in names if n not in df.columns]
    if absent:
        raise DataError(f"--extra {csv} has no column {absent[0]!r}, which the model needs (needs: {', '.join(names)})")
    if "file" in df.columns:
        keys, key_of = df["file"].astype(str).map(lambda s: Path(s).name), (lambda f: f.name)
    elif "id" in df.columns:
        keys, key_of = df["id"].astype(str), (lambda f: f.stem)
    else:
        raise DataError(f"--extra {csv} needs a 'file' or 'id' column to match rows to images")
    table = df.assign(_key=keys.to_numpy()).drop_duplicates("_key").set_index("_key")
    missing = [f for f in files if key_of(f) not in table.index]
    if missing:
        raise DataError(f"--extra {csv} has no row for {missing[0]} ({len(missing)} image(s) without extra inputs)")
    values = table.loc[[key_of(f) for f in files], list(names)].apply(pd.to_numeric, errors="coerce").to_numpy(np.float32)
    if not np.isfinite(values).all():
        row = int(np.argwhere(~np.isfinite(values))[0, 0])
        raise DataError(f"--extra {csv}: non-numeric or missing {', '.join(names)} for {files[row]}")
    return values


@torch.inference_mode()
def predict_probabilities(loaded: LoadedModel, images: np.ndarray, extras: np.ndarray, tta: bool = False,
                          batch_size: int = 64, precision: str = "fp32") -> np.ndarray:
    """Calibrated probabilities [N, classes] for model inputs [N, S, S, C] (:func:`read_inputs`).

    The packaged model divides its logits by the card's temperature; with ``tta`` the views' logits are
    rescaled to the temperature fitted for the TTA average (the card's ``temperature_tta``). ``precision``
    "bf16" runs the network under bf16 autocast (the softmax in fp32).
    """
    views = dihedral_views(loaded.card.get("flips_allowed", True)) if tta else [(0, False)]
    perm = mirror_permutation(loaded.class_names, loaded.card.get("mirror_pairs", []))
    calibration = loaded.card.get("probability_calibration") or {}
    rescale = calibration.get("temperature", 1.0) / calibration.get("temperature_tta", 1.0) if tta else 1.0
    model = loaded.inference_model
    out = []
    for start in range(0, len(images), batch_size):
        # channels_last, as in training: oneDNN's convolutions are faster on it (the same values either way)
        x = torch.from_numpy(np.ascontiguousarray(images[start:start + batch_size])).float().permute(0, 3, 1, 2)
        e = torch.from_numpy(np.array(extras[start:start + batch_size], dtype=np.float32))
        forward = (lambda v, e=e: model(v, e)) if loaded.spec.n_extra else model
        with autocast(x.device, precision):
            logits = view_logits(forward, x, views, perm) * rescale
        out.append(torch.softmax(logits, dim=-1).mean(dim=0).numpy())
    return np.concatenate(out) if out else np.zeros((0, len(perm)), np.float32)


def read_inputs(loaded: LoadedModel, rows: Sequence[Sequence[str]]) -> np.ndarray:
    """What the packaged model takes, float32 [N, S, S, C]: 8-bit images decoded, cropped, resized and scaled to
    [0, 1]; FITS rows (a file, or one per band) read as the training catalogue was, raw fluxes."""
    size, crop = loaded.config.image_size, loaded.config.crop
    if loaded.is_fits:
        layout = FitsLayout.from_dict(loaded.config.fits or {})
        return np.stack([decode_fits(list(row), layout, size, crop)[0] for row in rows])
    return np.stack([decode_image(row[0], size, crop) for row in rows]).astype(np.float32) / 255.0


def inference_precision(requested: str) -> str:
    """``auto``: bf16 where the CPU has AMX (measured 1.1-2.3× faster networks, §20), else fp32; or as asked."""
    from synthesis.hardware.device import cpu_bf16_flags

    if requested == "auto":
        return "bf16" if "amx_bf16" in cpu_bf16_flags() else "fp32"
    if requested == "bf16" and not cpu_bf16_flags():
        raise DataError("--precision bf16: this CPU has no bf16 instructions (avx512_bf16 or AMX); use fp32")
    return requested
