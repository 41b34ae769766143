"""The files of ``models/ensemble/``: one network that averages the members, as every model folder holds it.

``model.pt`` (every member's weights, spec and temperature, the ensemble's weights and temperature:
:func:`synthesis.models.save_ensemble`), ``arch.json`` (the first member's spec: the input size, channels and
extra inputs they all share), ``model.ts`` (TorchScript: ``forward`` gives the calibrated logits,
``member_probabilities`` each member's [M, N, K]), ``model.onnx`` (outputs ``logits`` and
``member_probabilities`` [N, M, K], checked against torch), ``card.json`` / ``card.md``,
``test_predictions.csv``, ``reliability.png`` and ``risk_coverage.png``. Written whole or not at all.
"""

from __future__ import annotations

import importlib.util
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from galaxy_synth.export.folder import example_inputs
from synthesis import GalaxySynthError
from synthesis.models import ArchSpec, EnsembleModel, WithMemberProbabilities


def write_ensemble_network(folder: Path, ensemble: EnsembleModel, spec: ArchSpec) -> dict[str, Any]:
    """``model.ts`` (forward and member_probabilities traced) and ``model.onnx`` (both outputs); the ONNX note."""
    inputs = example_inputs(spec)
    with warnings.catch_warnings(), torch.device("cpu"):
        warnings.simplefilter("ignore")  # TorchScript is deprecated upstream but still what plain torch loads
        traced = torch.jit.trace_module(ensemble, {"forward": inputs, "member_probabilities": inputs})
    traced.save(str(folder / "model.ts"))
    return write_ensemble_onnx(ensemble, spec, folder / "model.onnx")


def write_ensemble_onnx(ensemble: EnsembleModel, spec: ArchSpec, path: Path) -> dict[str, Any]:
    """ONNX with the logits and the members' probabilities, checked against torch on a batch."""
    if importlib.util.find_spec("onnx") is None:
        return {"written": False, "note": "onnx not installed (pip install 'galaxy-synth[export]')"}
    inputs = example_inputs(spec, n=4)
    names = ["images", "extra"][: len(inputs)]
    outputs = ["logits", "member_probabilities"]
    with warnings.catch_warnings(), torch.device("cpu"):
        warnings.simplefilter("ignore")
        torch.onnx.export(WithMemberProbabilities(ensemble).eval(), inputs, str(path), input_names=names,
                          output_names=outputs, dynamic_axes={n: {0: "batch"} for n in (*names, *outputs)}, dynamo=False)
    try:
        import onnxruntime as ort
    except ImportError:
        return {"written": True, "verified": False, "note": "onnxruntime not installed: not checked"}
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {n: t.numpy() for n, t in zip(names, inputs)})
    with torch.inference_mode():
        want = [t.numpy() for t in WithMemberProbabilities(ensemble)(*inputs)]
    err = max(float(np.abs(g - w).max()) for g, w in zip(got, want))
    if err > 1e-3:
        raise GalaxySynthError(f"ONNX export of the ensemble disagrees with torch (max |Δ| {err:.2g})")
    return {"written": True, "verified": True, "max_abs_diff_vs_torch": err, "checked_batch": 4, "outputs": outputs}


def write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2))
