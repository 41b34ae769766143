"""Export, after full training: the study's best architectures, fully trained and packaged (``galaxy-synth export``).

Ranking uses the current calibration (as ``rank`` does); weights come from ``correlate``'s
ground truth where they exist (same study, trial, epochs and seed), otherwise the trial is
fully trained here with the same loop (:mod:`synthesis.full_training`). Each ``RESULTS/models/rank{i}/`` holds:

* ``model.pt``   the network in galaxy-synth's one weights format (:mod:`synthesis.models.package`: state dict,
  spec and preprocessing; ``torch.load(..., weights_only=True)``)
* ``arch.json``  the spec that builds the network (:func:`synthesis.models.build_model`)
* ``model.ts``   TorchScript of the *packaged* model (normalisation inside), runs with plain torch
* ``model.onnx`` the same in ONNX, when the ``onnx`` package is installed (checked against torch)
* ``card.json`` / ``card.md``  what a user needs to run and judge it

The packaged model takes RGB images as float tensors in [0, 1] (FITS models: raw fluxes), shape [N, C, S, S], already
centre-cropped and resized as the card says, plus the raw extra inputs (e.g. z, z_err) when
the card lists any, and returns calibrated logits: divided by the temperature fitted on the validation
split (:mod:`synthesis.training.temperature`), so that their softmax is a probability that means what
it says; the card gives the expected calibration error before and after, ``reliability.png`` the diagram.

Modules: :mod:`.settings` (:class:`ExportSettings`: one request), :mod:`.top` (ranking, full training, one folder
per model), :mod:`.card` (``card.json``), :mod:`.card_markdown` (``card.md``), :mod:`.folder` (the folder's files,
written whole or not at all), :mod:`.ensemble` (``--ensemble``: greedy ensemble selection into ``models/ensemble/``),
:mod:`.ensemble_card` (its metrics, reliability threshold and risk–coverage), :mod:`.ensemble_folder` (its files:
one TorchScript / ONNX network averaging the members, with their probabilities).
"""

from galaxy_synth.export.card import cpu_latency_ms, model_card
from galaxy_synth.export.card_markdown import card_markdown, usage_snippet
from galaxy_synth.export.ensemble import export_ensemble
from galaxy_synth.export.ensemble_card import paired_sentences
from galaxy_synth.export.folder import test_predictions, write_model_folder, write_onnx
from galaxy_synth.export.settings import ExportSettings
from galaxy_synth.export.top import ExportedModel, export_top

__all__ = ["export_top", "ExportSettings", "ExportedModel", "model_card", "cpu_latency_ms", "card_markdown",
           "usage_snippet", "write_model_folder", "write_onnx", "test_predictions", "export_ensemble",
           "paired_sentences"]
