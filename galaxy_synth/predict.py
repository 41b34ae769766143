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
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from galaxy_synth.export import MODEL_FILES, PackagedModel
from synthesis.data.decode import IMAGE_EXTENSIONS, decode_image
from synthesis.data.preprocessing import ExtraScaler, Normalizer
from synthesis.errors import DataError
from synthesis.models.package import load_model
from synthesis.models.spec import ArchSpec, model_spec_from_dict


@dataclass
class LoadedModel:
    model: PackagedModel
    card: dict[str, Any]
    spec: ArchSpec

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
        norm = card["input"]["normalisation"]
        normalizer = Normalizer(tuple(norm["mean"]), tuple(norm["std"]))
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
    return LoadedModel(PackagedModel(net, normalizer, scaler, spec.n_extra).eval(), card, spec)


def collect_images(paths: Sequence[str | Path]) -> list[Path]:
    """Image files named directly, plus image files found (recursively) in named folders."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS)
        elif p.is_file():
            files.append(p)
        else:
            raise DataError(f"image or folder not found: {p}")
    if not files:
        raise DataError(f"no image files ({', '.join(sorted(IMAGE_EXTENSIONS))}) in {', '.join(map(str, paths))}")
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


def dihedral_views(loaded: LoadedModel) -> list[tuple[int, bool]]:
    """(quarter turns, mirrored) pairs for TTA: all 8, or the 4 rotations where flips are not allowed."""
    flips = (False, True) if loaded.card.get("flips_allowed", True) else (False,)
    return [(k, f) for f in flips for k in range(4)]


def mirror_permutation(loaded: LoadedModel) -> list[int]:
    """Class index order that swaps each mirror pair (applied to a flipped view's probabilities)."""
    names = loaded.class_names
    perm = list(range(len(names)))
    for a, b in loaded.card.get("mirror_pairs", []):
        i, j = names.index(a), names.index(b)
        perm[i], perm[j] = j, i
    return perm


@torch.no_grad()
def predict_probabilities(loaded: LoadedModel, images: np.ndarray, extras: np.ndarray, tta: bool = False,
                          batch_size: int = 64) -> np.ndarray:
    """Softmax probabilities [N, classes] for uint8 images [N, S, S, 3]."""
    views = dihedral_views(loaded) if tta else [(0, False)]
    perm = mirror_permutation(loaded)
    out = []
    for start in range(0, len(images), batch_size):
        x = torch.from_numpy(np.ascontiguousarray(images[start:start + batch_size].transpose(0, 3, 1, 2))).float() / 255.0
        e = torch.from_numpy(np.array(extras[start:start + batch_size], dtype=np.float32))
        acc = torch.zeros(x.shape[0], len(perm), device=x.device)
        for k, mirrored in views:
            v = torch.rot90(x.flip(-1) if mirrored else x, k, dims=(-2, -1))
            p = torch.softmax(loaded.model(v, e if loaded.spec.n_extra else None), dim=1)
            acc += p[:, perm] if mirrored else p  # a mirrored cw spiral is seen as acw: swap back
        out.append((acc / len(views)).numpy())
    return np.concatenate(out)


def predict_files(loaded: LoadedModel, files: Sequence[Path], extras_csv: str | Path | None = None,
                  tta: bool = False) -> pd.DataFrame:
    """One row per file: predicted class and every class probability. Reads every image before returning.

    A model trained with extra inputs (z, z_err) and no ``extras_csv`` gets the training-set means
    for every image; the ``extra_inputs`` column says so on every row.
    """
    size, crop = loaded.spec.image_size, float(loaded.card["input"]["crop_fraction"])
    extras = read_extras(extras_csv, files, loaded.extra_names, fallback=loaded.card["extra_inputs"].get("mean"))
    images = np.stack([decode_image(str(f), size, crop) for f in files])
    probs = predict_probabilities(loaded, images, extras, tta)
    names = loaded.class_names
    df = pd.DataFrame({"file": [str(f) for f in files], "predicted": [names[i] for i in probs.argmax(1)],
                       "confidence": probs.max(1)})
    for i, n in enumerate(names):
        df[f"p_{n}"] = probs[:, i]
    if loaded.extra_names:
        df["extra_inputs"] = "from " + str(extras_csv) if extras_csv is not None else EXTRAS_FALLBACK
    return df
