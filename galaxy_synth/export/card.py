"""The model card (``card.json``): everything a user needs to trust and run one exported model, measured here."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from galaxy_synth.export.folder import example_inputs
from synthesis.full_training import full_training_config
from synthesis.models import count_flops, count_params
from synthesis.models import PackagedModel
from synthesis.models import ArchSpec, model_spec_from_dict
from synthesis.training import evaluate


@dataclass
class Ranking:
    """What picked the exported models: the table's scores and the calibration used."""

    proxy_scores: dict[int, float]
    rank_scores: dict[int, float]
    proxy: Any
    source: Path
    by: str


def model_card(opened: Any, prep: Any, trial: Any, net: nn.Module, packaged: PackagedModel, test: Any, rank: int,
               ranking: Ranking, training: dict[str, Any]) -> dict[str, Any]:
    """Everything a user needs to trust and run one exported model, measured here on the test split."""
    attrs, number = opened.attrs, trial.number
    spec = model_spec_from_dict(trial.user_attrs["arch"])
    result = evaluate(net, test, prep.normalizer, prep.num_classes)  # measured here
    rank_score = ranking.rank_scores.get(number)
    return {
        "rank": rank, "study": opened.study.study_name, "trial": number, "spec_hash": spec.spec_hash(),
        "architecture": spec.describe(), **input_fields(opened, prep, spec),
        "params": count_params(net), "flops_per_image": count_flops(net, spec), "cpu_latency": cpu_latency_ms(packaged, spec),
        "test": {"n_images": len(test), "accuracy": result.accuracy, "balanced_accuracy": result.balanced_accuracy,
                 "macro_f1": result.macro_f1, "loss": result.loss, "confusion": result.confusion,
                 "fraction_mae": result.fraction_mae, **question_errors(spec, opened.data.schema, result.question_mae),
                 "confusion_axes": "rows = true class, columns = predicted, in class_names order"},
        "proxy": {"score": float(ranking.proxy_scores[number]), "calibration": ranking.proxy.name,
                  "calibration_hash": ranking.proxy.calibration_hash, "calibration_file": str(ranking.source)},
        "ranked_by": {"criterion": ranking.by, "study_objective": attrs.get("objective"),
                      "score": float(rank_score) if rank_score is not None else None},
        "training": {**training, "precision": opened.settings.precision, **full_training_config(trial.user_attrs).to_dict()},
        "data": {"dataset": opened.settings.data or "embedded procedural galaxies", "fingerprint": attrs.get("fingerprint"),
                 "merge": opened.settings.merge, "drop": opened.settings.drop, "n_images": attrs.get("n_images"),
                 "split": {k: len(v) for k, v in opened.plan.items() if k in ("train", "val", "test")}},
        "created": time.strftime("%Y-%m-%d %H:%M:%S"), "torch": torch.__version__,
    }


def input_fields(opened: Any, prep: Any, spec: ArchSpec) -> dict[str, Any]:
    """What a card says about the network's inputs and classes (every model of a study shares them)."""
    data = opened.data
    return {
        "class_names": list(data.class_names),
        "input": {"size": spec.image_size, "channels": "".join(prep.preprocessing.channels), "crop_fraction": data.crop,
                  "channels_list": list(prep.preprocessing.channels),
                  "what": "RGB in [0, 1], centre-cropped and resized as the card says" if prep.normalizer.mapping is None
                  else f"raw fluxes in bands {', '.join(prep.preprocessing.channels)}, cropped and resized as the card says",
                  "preprocessing": prep.preprocessing.describe_input(), "normalisation": prep.normalizer.to_dict(),
                  "config": prep.preprocessing.to_dict()},
        "extra_inputs": {"names": list(data.extra_names), "mean": prep.extra_scaler.mean, "std": prep.extra_scaler.std,
                         "note": "raw values; the packaged model standardises them" if data.extra_names else "none"},
        "mirror_pairs": [[data.class_names[a], data.class_names[b]] for a, b in prep.mirror_pairs],
        "flips_allowed": prep.allow_flips,
        **vote_fields(spec, data.schema),
    }


def vote_fields(spec: ArchSpec, schema: dict[str, Any] | None) -> dict[str, Any]:
    """A vote model's (``--schema``) questions and head layout, what predict names its columns from; nothing for a
    classifier (its card is as it was)."""
    if schema is None or getattr(spec, "votes", None) is None:
        return {}
    return {"votes": {"schema": schema, "layout": spec.votes.to_dict(),
                      "outputs": "model.ts: forward → class logits, votes → (class logits, concentrations); model.onnx: "
                                 "outputs logits and concentrations (1 + 100·sigmoid, one Dirichlet per question)"}}


def question_errors(spec: ArchSpec, schema: dict[str, Any] | None, question_mae: list[float] | None) -> dict[str, Any]:
    """The test split's fraction error per question, by name (vote models only)."""
    if not vote_fields(spec, schema) or question_mae is None:
        return {}
    return {"question_mae": {q["name"]: float(e) for q, e in zip(schema["question"], question_mae)}}


def cpu_latency_ms(model: nn.Module, spec: ArchSpec, min_run_time: float = 0.3) -> dict[str, float]:
    """Median (and IQR) milliseconds for one image on the CPU, one thread (``torch.utils.benchmark``).

    One image on one core: stable, and how a single-image service runs. The thread count is
    restored afterwards whatever happens.
    """
    import logging

    # torch.utils.benchmark imports cpp_extension, which warns about CUDA_HOME on machines that
    # have a CUDA folder and no GPU: noise for a latency measurement that never compiles anything.
    cpp_logger = logging.getLogger("torch.utils.cpp_extension")
    level = cpp_logger.level
    cpp_logger.setLevel(logging.ERROR)
    try:
        from torch.utils import benchmark
    finally:
        cpp_logger.setLevel(level)

    model = model.cpu().eval()
    inputs = example_inputs(spec, n=1)
    threads = torch.get_num_threads()
    try:
        with torch.inference_mode(), torch.device("cpu"):  # a CPU measurement, whatever the default device
            timer = benchmark.Timer(stmt="model(*inputs)", globals={"model": model, "inputs": inputs}, num_threads=1)
            measured = timer.blocked_autorange(min_run_time=min_run_time)
            median, iqr, runs = measured.median, measured.iqr, len(measured.times)  # computed lazily, by torch
    finally:
        torch.set_num_threads(threads)
    return {"median_ms": round(median * 1e3, 3), "iqr_ms": round(iqr * 1e3, 3), "runs": runs, "batch": 1,
            "torch_threads": 1, "timer": "torch.utils.benchmark"}
