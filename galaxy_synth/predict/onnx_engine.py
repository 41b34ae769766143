"""The ONNX engine: a model folder's ``model.onnx`` in ONNX Runtime, in a process that never imports torch.

``model.onnx`` is the packaged model (normalisation, extra-input scaling and the calibration temperature
inside), written and checked against torch by export. Running it needs only numpy and onnxruntime, so a
catalogue run's network process starts in a fraction of a second instead of the seconds torch takes to
import, and holds ≈ 0.2 GB instead of ≈ 0.8 GB (docs/BENCHMARKS.md §20). The test-time views and the
softmax are numpy twins of :func:`galaxy_synth.predict.network.predict_probabilities`'s (tested equal to it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from galaxy_common import DataError
from galaxy_synth.predict.model_folder import ModelFolder
from galaxy_synth.predict.uncertainty import combine_member_views, is_ensemble, member_weights
from synthesis.training import array_view

NEEDS_RUNTIME = "--engine onnx needs onnxruntime: pip install 'galaxy-synth[export]'"
FP32_ONLY = "--engine onnx runs fp32: use --precision fp32, or --engine torch for bf16"


@dataclass
class OnnxModel(ModelFolder):
    """A model folder with an ONNX Runtime session on its ``model.onnx``."""

    session: Any = None

    @classmethod
    def load(cls, model: ModelFolder, threads: int = 1) -> OnnxModel:
        """One line (DataError) where onnxruntime is missing or model.onnx cannot be read."""
        try:
            import onnxruntime as ort
        except ImportError:
            raise DataError(NEEDS_RUNTIME) from None
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads  # one per process: the allotted cores are filled with processes
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only: its start-up notes are not the user's business
        path = model.folder / "model.onnx"
        try:
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 — ONNX Runtime raises its own many types; each is a broken file here
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DataError(f"corrupt model.onnx in {model.folder}: {first[:200]}") from None
        return cls(model.folder, model.card, model.spec, model.config, session)

    def probabilities(self, images: np.ndarray, extras: np.ndarray, tta: bool = False, precision: str = "fp32",
                      batch_size: int = 64) -> np.ndarray:
        """Calibrated probabilities [N, classes] for model inputs [N, S, S, C], as the torch engine computes them."""
        return self.probabilities_with_members(images, extras, tta, precision, batch_size)[0]

    def concentrations(self, images: np.ndarray, extras: np.ndarray, precision: str = "fp32",
                       batch_size: int = 64) -> np.ndarray:
        """A vote model's Dirichlet concentrations [N, answers]: ``model.onnx``'s output ``concentrations``."""
        if precision != "fp32":
            raise DataError(FP32_ONLY)
        names = [i.name for i in self.session.get_inputs()]
        out = []
        for start in range(0, len(images), batch_size):
            feeds = {names[0]: np.ascontiguousarray(np.asarray(images[start:start + batch_size], np.float32).transpose(0, 3, 1, 2))}
            if self.spec.n_extra and len(names) > 1:
                feeds[names[1]] = np.asarray(extras[start:start + batch_size], dtype=np.float32)
            out.append(self.session.run(["concentrations"], feeds)[0])
        return np.concatenate(out) if out else np.zeros((0, self.spec.outputs), np.float32)

    def probabilities_with_members(self, images: np.ndarray, extras: np.ndarray, tta: bool = False,
                                   precision: str = "fp32", batch_size: int = 64) -> tuple[np.ndarray, np.ndarray | None]:
        """The probabilities and, for an ensemble (``model.onnx``'s second output), each member's [M, N, K]."""
        if precision != "fp32":
            raise DataError(FP32_ONLY)
        views, perm, rescale = self.test_time_views(tta)
        names = [i.name for i in self.session.get_inputs()]
        ensemble = is_ensemble(self)
        weights = member_weights(self) if ensemble else None
        temperature = float(self.card["probability_calibration"]["temperature"]) if ensemble else 1.0
        out, members = [], []
        for start in range(0, len(images), batch_size):
            x = np.asarray(images[start:start + batch_size], dtype=np.float32).transpose(0, 3, 1, 2)
            feeds = {}
            if self.spec.n_extra and len(names) > 1:
                feeds[names[1]] = np.asarray(extras[start:start + batch_size], dtype=np.float32)
            if ensemble:
                per_view = []
                for view in views:
                    got = self.session.run(None, {names[0]: np.ascontiguousarray(array_view(x, view)), **feeds})[1]
                    per_view.append((got[..., perm] if view[1] else got).transpose(1, 0, 2))  # [N, M, K] → [M, N, K]
                p, m = combine_member_views(np.stack(per_view), weights, temperature)
                out.append(p)
                members.append(m)
                continue
            logits = []
            for view in views:
                got = self.session.run(None, {names[0]: np.ascontiguousarray(array_view(x, view)), **feeds})[0]
                logits.append(got[:, perm] if view[1] else got)
            scaled = np.stack(logits).astype(np.float32) * np.float32(rescale)
            scaled -= scaled.max(axis=-1, keepdims=True)
            p = np.exp(scaled)
            out.append((p / p.sum(axis=-1, keepdims=True)).mean(axis=0))
        probs = np.concatenate(out) if out else np.zeros((0, len(perm)), np.float32)
        if not ensemble:
            return probs, None
        return probs, np.concatenate(members, axis=1) if members else np.zeros((len(weights), 0, len(perm)), np.float32)
