"""What goes into an exported model folder, written whole or not at all, and registered with the study.

``model.pt``, ``arch.json``, ``model.ts``, ``model.onnx`` (checked against torch), ``card.json`` /
``card.md``, ``test_predictions.csv`` and ``reliability.png`` (see :mod:`galaxy_synth.export`).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from galaxy_common import atomic_folder
from galaxy_synth.export.card_markdown import card_markdown
from synthesis.data import PreprocessingConfig
from synthesis import GalaxySynthError
from synthesis.models import PackagedModel, plain_convolutions, save_model
from synthesis.models import ArchSpec
from synthesis.training import TemperatureCalibration, plot_reliability


def example_inputs(spec: ArchSpec, n: int = 2) -> tuple[torch.Tensor, ...]:
    """Fixed random CPU inputs: export always traces and checks on the CPU."""
    g = torch.Generator(device="cpu").manual_seed(0)
    images = torch.rand(n, spec.in_channels, spec.image_size, spec.image_size, generator=g, device="cpu")
    return (images, torch.rand(n, spec.n_extra, generator=g, device="cpu")) if spec.n_extra else (images,)


class _BothOutputs(nn.Module):
    """A vote model as ONNX holds it: two named outputs, the class logits and the concentrations."""

    def __init__(self, packaged: PackagedModel) -> None:
        super().__init__()
        self.packaged = packaged

    def forward(self, images: torch.Tensor, extra: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return self.packaged.votes(images, extra)


def write_onnx(model: PackagedModel, spec: ArchSpec, path: Path) -> dict[str, Any]:
    """ONNX export checked against torch on a batch; a note instead when onnx is not installed. A vote model
    (``--schema``) has a second output, ``concentrations``."""
    if importlib.util.find_spec("onnx") is None:
        return {"written": False, "note": "onnx not installed (pip install 'galaxy-synth[export]')"}
    inputs = example_inputs(spec, n=4)
    names = ["images", "extra"][: len(inputs)]
    votes = getattr(spec, "votes", None) is not None
    # (the wrapper in the packaged model's mode: the exporter restores each module's mode from the top one)
    exported, outputs = (_BothOutputs(model).train(model.training), ["logits", "concentrations"]) if votes \
        else (model, ["logits"])
    # torch's exporter makes constants with the default device: pin it to the CPU, where export runs.
    with warnings.catch_warnings(), torch.device("cpu"):
        warnings.simplefilter("ignore")  # the TorchScript-based exporter is deprecated but needs no onnxscript
        torch.onnx.export(exported, inputs, str(path), input_names=names, output_names=outputs,
                          dynamic_axes={n: {0: "batch"} for n in names + outputs}, dynamo=False)
    try:
        import onnxruntime as ort
    except ImportError:
        return {"written": True, "verified": False, "note": "onnxruntime not installed: not checked"}
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {n: t.numpy() for n, t in zip(names, inputs)})
    with torch.inference_mode():
        want = [t.numpy() for t in (exported(*inputs) if votes else (model(*inputs),))]
    err = max(float(np.abs(g - w).max()) for g, w in zip(got, want))
    if err > 1e-3:
        raise GalaxySynthError(f"ONNX export of {path.parent.name} disagrees with torch (max |Δlogit| {err:.2g})")
    return {"written": True, "verified": True, "max_abs_diff_vs_torch": err, "checked_batch": 4}


def plain_packaged(packaged: PackagedModel, spec: ArchSpec) -> PackagedModel:
    """The packaged model as ``model.ts`` and ``model.onnx`` hold it: an equivariant network's group convolutions
    as the plain convolutions (and batch norms) they compute, checked to give the trained module's logits; any
    other model as it is."""
    plain = plain_convolutions(packaged)
    if plain is packaged:
        return packaged
    inputs = example_inputs(spec, n=4)
    with torch.inference_mode():
        err = float((plain(*inputs) - packaged(*inputs)).abs().max())
    if err > 1e-4:
        raise GalaxySynthError(f"the plain-convolution form of this equivariant network disagrees with it "
                               f"(max |Δlogit| {err:.2g})")
    return plain


def write_network_files(folder: Path, packaged: PackagedModel, spec: ArchSpec) -> dict[str, Any]:
    """``model.ts`` (TorchScript) and ``model.onnx`` of the packaged model, made of plain modules; the ONNX note."""
    packaged = plain_packaged(packaged, spec)
    with warnings.catch_warnings(), torch.device("cpu"):
        warnings.simplefilter("ignore")  # TorchScript is deprecated upstream but still what plain torch loads
        inputs = example_inputs(spec)
        # a vote model keeps its second method: votes → (class logits, concentrations)
        traced = torch.jit.trace(packaged, inputs) if getattr(spec, "votes", None) is None else \
            torch.jit.trace_module(packaged, {"forward": inputs, "votes": inputs})
    traced.save(str(folder / "model.ts"))
    return write_onnx(packaged, spec, folder / "model.onnx")


def test_predictions(opened: Any, prep: Any, probabilities: np.ndarray) -> pd.DataFrame:
    """One row per test galaxy with the catalogue's columns (id, and --keep-columns such as ra, dec), the true
    class, the prediction and every probability: joined back to the catalogue by id."""
    rows = np.asarray(opened.plan["test"])
    data = opened.data
    names = list(data.class_names)
    catalogue = data.catalogue or {"id": list(data.ids)}
    table = pd.DataFrame({k: [values[i] for i in rows] for k, values in catalogue.items()})
    table["true"] = [names[i] for i in data.labels[rows]]
    table["predicted"] = [names[i] for i in probabilities.argmax(1)]
    for k, name in enumerate(names):
        table[f"p_{name}"] = probabilities[:, k]
    if data.soft is not None:
        for k, name in enumerate(names):
            table[f"votes_{name}"] = data.soft[rows, k]
    return table


def write_model_folder(folder: Path, net: nn.Module, packaged: PackagedModel, spec: ArchSpec, card: dict,
                  preprocessing: PreprocessingConfig, predictions: pd.DataFrame,
                  calibration: TemperatureCalibration) -> dict:
    """Write every file into a fresh temporary folder, then swap it in: never a half-written model."""

    def write(tmp: Path) -> dict:
        save_model(tmp / "model.pt", net, spec, preprocessing, rank=card["rank"], study=card["study"], trial=card["trial"])
        (tmp / "arch.json").write_text(json.dumps(spec.to_dict(), indent=2))
        onnx_info = write_network_files(tmp, packaged, spec)
        written = {**card, "onnx": onnx_info}
        (tmp / "card.json").write_text(json.dumps(written, indent=2))
        (tmp / "card.md").write_text(card_markdown(written))
        predictions.to_csv(tmp / "test_predictions.csv", index=False)
        plot_reliability(calibration.test_before, calibration.test_after, calibration.temperature, tmp / "reliability.png",
                         f"rank {card['rank']} (trial {card['trial']}): test split, {card['test']['n_images']} galaxies")
        return onnx_info

    return atomic_folder(folder, write)


def register_artifacts(study: Any, rank: int, trial_number: int, folder: Path, results: Path) -> None:
    """Attach the card and TorchScript file to the study in Optuna's artifact store (optuna-dashboard shows them).

    On the study, not the trial: Optuna refuses to change a finished trial.
    """
    from optuna.artifacts import FileSystemArtifactStore, upload_artifact

    store_dir = results / "artifacts"
    store_dir.mkdir(parents=True, exist_ok=True)
    store = FileSystemArtifactStore(store_dir)
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # experimental API
        for name, mime in (("card.md", "text/markdown"), ("model.ts", "application/octet-stream")):
            named = Path(tmp) / f"rank{rank}-trial{trial_number}-{name}"  # the store keeps the file's base name
            shutil.copyfile(folder / name, named)
            upload_artifact(artifact_store=store, file_path=str(named), study_or_trial=study, mimetype=mime)
