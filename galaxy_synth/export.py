"""``galaxy-synth export``: the study's best architectures, fully trained and packaged.

Ranking uses the current calibration (as ``rank`` does); weights come from ``correlate``'s
ground truth where they exist (same study, trial, epochs and seed), otherwise the trial is
fully trained here with the same loop. Each ``RESULTS/models/rank{i}/`` holds:

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
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from galaxy_common.files import atomic_write_text
from galaxy_synth.input_domain import training_domain
from galaxy_synth.model_card import card_markdown
from synthesis.data.preprocessing import (
    PreprocessingConfig,
)
from synthesis.errors import GalaxySynthError
from synthesis.full_training import (
    FullTrainingJob,
    check_full_epochs,
    full_training_config,
    open_ground_truth,
    stored_or_trained,
    train_jobs,
)
from synthesis.full_training import (
    FullTrainingJob,
    check_full_epochs,
    full_training_config,
    open_ground_truth,
    stored_or_trained,
    train_jobs,
)
from synthesis.models.builder import count_flops, count_params
from synthesis.models.package import PackagedModel, save_model
from synthesis.models.spec import ArchSpec, model_spec_from_dict
from synthesis.search.ranking import metrics_table
from synthesis.search.study import find_calibration, reopen_study
from synthesis.training.loop import evaluate
from synthesis.training.temperature import (
    TemperatureCalibration,
    calibrate_network,
    plot_reliability,
)
from synthesis.training.views import dihedral_views, mirror_permutation


@dataclass
class ExportedModel:
    rank: int
    trial: int
    folder: Path
    card: dict[str, Any]


def _example_inputs(spec: ArchSpec, n: int = 2) -> tuple[torch.Tensor, ...]:
    """Fixed random CPU inputs: export always traces and checks on the CPU."""
    g = torch.Generator(device="cpu").manual_seed(0)
    images = torch.rand(n, spec.in_channels, spec.image_size, spec.image_size, generator=g, device="cpu")
    return (images, torch.rand(n, spec.n_extra, generator=g, device="cpu")) if spec.n_extra else (images,)


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
    inputs = _example_inputs(spec, n=1)
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


def write_onnx(model: PackagedModel, spec: ArchSpec, path: Path) -> dict[str, Any]:
    """ONNX export checked against torch on a batch; a note instead when onnx is not installed."""
    if importlib.util.find_spec("onnx") is None:
        return {"written": False, "note": "onnx not installed (pip install 'galaxy-synth[export]')"}
    inputs = _example_inputs(spec, n=4)
    names = ["images", "extra"][: len(inputs)]
    # torch's exporter makes constants with the default device: pin it to the CPU, where export runs.
    with warnings.catch_warnings(), torch.device("cpu"):
        warnings.simplefilter("ignore")  # the TorchScript-based exporter is deprecated but needs no onnxscript
        torch.onnx.export(model, inputs, str(path), input_names=names, output_names=["logits"],
                          dynamic_axes={**{n: {0: "batch"} for n in names}, "logits": {0: "batch"}}, dynamo=False)
    try:
        import onnxruntime as ort
    except ImportError:
        return {"written": True, "verified": False, "note": "onnxruntime not installed: not checked"}
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {n: t.numpy() for n, t in zip(names, inputs)})[0]
    with torch.inference_mode():
        want = model(*inputs).numpy()
    err = float(np.abs(got - want).max())
    if err > 1e-3:
        raise GalaxySynthError(f"ONNX export of {path.parent.name} disagrees with torch (max |Δlogit| {err:.2g})")
    return {"written": True, "verified": True, "max_abs_diff_vs_torch": err, "checked_batch": 4}


@dataclass
class _Ranking:
    """What picked the exported models: the table's scores and the calibration used."""

    proxy_scores: dict[int, float]
    rank_scores: dict[int, float]
    proxy: Any
    source: Path
    by: str


def export_top(storage: str, study_name: str | None, results: Path, top: int = 3, full_epochs: int = 30, seed: int = 0,
               device: str = "auto", calibration: str | None = None, progress: bool = True,
               by: str = "objective", knee: bool = False) -> list[ExportedModel]:
    """Fully train (or reuse) and package the study's ``top`` best trials into ``<study folder>/models/rank{i}/``.

    ``by``: what ranks them (see :func:`synthesis.search.ranking.metrics_table`): the study's objective, the
    current calibration's proxy, validation accuracy or balanced accuracy. ``knee``: also the front's knee.
    """
    if top < 1:
        raise GalaxySynthError("--top must be >= 1")
    check_full_epochs(full_epochs)
    opened = reopen_study(storage, study_name, results, progress, device)
    name = opened.study.study_name
    proxy, source = find_calibration(calibration, results)
    table = metrics_table(opened.study, proxy, by=by)
    table = table[table["finished"]]
    if table.empty:
        raise GalaxySynthError(f"study {name!r} has no completed trials to export")
    chosen = [int(n) for n in table["trial"].head(top)]
    knee_trial = _knee_trial(table, opened.attrs) if knee else None
    if knee_trial is not None and knee_trial not in chosen:
        chosen.append(knee_trial)  # packaged as models/knee/ beside the top ones
    ranking = _Ranking(dict(zip(table["trial"].astype(int), table["proxy_score"])),
                       dict(zip(table["trial"].astype(int), table["rank_score"])), proxy, source, by)
    store = open_ground_truth(opened.settings.storage_url)
    missing = [FullTrainingJob(n, full_epochs, seed) for n in chosen if not _weights_stored(store.get(name, n, full_epochs, seed))]
    trained = {r["trial"] for r in train_jobs(opened, store, missing, len(chosen), progress, "full training") if r["trained_now"]}
    trials = {t.number: t for t in opened.study.get_trials(deepcopy=False)}
    prep = opened.prepared()
    test = prep.split("test", torch.device("cpu"))
    val = prep.split("val", torch.device("cpu"))  # where the temperature is fitted (trials never score on all of it)
    domain = training_domain(prep)
    exported = []
    for rank, number in enumerate(chosen, start=1):
        record, net, trained_now = stored_or_trained(store, name, number, trials[number].user_attrs, prep, full_epochs, seed,
                                                     opened.device, opened.settings.study_dir / "ground_truth",
                                                     opened.settings.precision, progress=progress, need_model=True)
        origin = "trained by galaxy-synth export" if trained_now or number in trained else \
            f"reused from an earlier full training by correlate or export ({record.weights_path})"
        net = net.cpu().eval()
        spec = model_spec_from_dict(trials[number].user_attrs["arch"])
        calibration, packaged = _calibrated_package(net, spec, prep, val, test)
        card = model_card(opened, prep, trials[number], net, packaged, test, rank, ranking,
                          {"full_epochs": full_epochs, "seed": seed, "weights": origin})
        card["probability_calibration"] = calibration.to_dict()
        card["input"]["domain"] = domain  # what predict compares each image with (domain_z)
        card["knee"] = number == knee_trial  # the cheapest trial within one SE of the best (export --knee)
        folder = opened.settings.study_dir / "models" / ("knee" if rank > top else f"rank{rank}")
        card["onnx"] = _write_folder(folder, net, packaged, spec, card, prep.preprocessing,
                                     test_predictions(opened, prep, calibration.test_probabilities), calibration)
        exported.append(ExportedModel(rank, number, folder, card))
        _register_artifacts(opened.study, rank, number, folder, results)
    _write_summary(exported, opened.settings.study_dir / f"top{top}_models.json")
    return exported


def _calibrated_package(net: nn.Module, spec: ArchSpec, prep: Any, val: Any, test: Any
                        ) -> tuple[TemperatureCalibration, PackagedModel]:
    """The temperature fitted on ``val`` (and measured on ``test``), and the packaged model that applies it."""
    calibration = calibrate_network(net, prep.normalizer, val, test, dihedral_views(prep.allow_flips),
                                    mirror_permutation(prep.class_names, prep.preprocessing.mirror_pairs))
    return calibration, PackagedModel(net, prep.normalizer, prep.extra_scaler, spec.n_extra, calibration.temperature).eval()


def _write_summary(exported: list[ExportedModel], path: Path) -> None:
    summary = [{"rank": e.rank, "trial": e.trial, "folder": str(e.folder), "architecture": e.card["architecture"],
                "params": e.card["params"], "ranked_by": e.card["ranked_by"]["criterion"],
                "rank_score": e.card["ranked_by"]["score"], "proxy_score": e.card["proxy"]["score"], **{k: e.card["test"][k] for k in
                ("accuracy", "balanced_accuracy", "macro_f1")}, "cpu_latency_ms": e.card["cpu_latency"]["median_ms"]}
               for e in exported]
    atomic_write_text(path, json.dumps(summary, indent=2))


def model_card(opened: Any, prep: Any, trial: Any, net: nn.Module, packaged: PackagedModel, test: Any, rank: int,
               ranking: _Ranking, training: dict[str, Any]) -> dict[str, Any]:
    """Everything a user needs to trust and run one exported model, measured here on the test split."""
    data, attrs, number = opened.data, opened.attrs, trial.number
    spec = model_spec_from_dict(trial.user_attrs["arch"])
    result = evaluate(net, test, prep.normalizer, prep.num_classes)  # measured here
    rank_score = ranking.rank_scores.get(number)
    return {
        "rank": rank, "study": opened.study.study_name, "trial": number, "spec_hash": spec.spec_hash(),
        "architecture": spec.describe(), "class_names": list(data.class_names),
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
        "params": count_params(net), "flops_per_image": count_flops(net, spec), "cpu_latency": cpu_latency_ms(packaged, spec),
        "test": {"n_images": len(test), "accuracy": result.accuracy, "balanced_accuracy": result.balanced_accuracy,
                 "macro_f1": result.macro_f1, "loss": result.loss, "confusion": result.confusion,
                 "fraction_mae": result.fraction_mae,
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


def _knee_trial(table: Any, attrs: dict[str, Any]) -> int | None:
    from synthesis.search.ranking import cost_front, knee_of, score_images

    front = cost_front(table)
    point = knee_of(front, score_images(attrs, table["ranked_by"].iloc[0])) if len(front) else None
    return int(point["trial"]) if point is not None else None


def _weights_stored(record: Any) -> bool:
    return record is not None and Path(record.weights_path).is_file()


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


def _write_folder(folder: Path, net: nn.Module, packaged: PackagedModel, spec: ArchSpec, card: dict,
                  preprocessing: PreprocessingConfig, predictions: pd.DataFrame,
                  calibration: TemperatureCalibration) -> dict:
    """Write every file into a fresh temporary folder, then swap it in: never a half-written model."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        save_model(tmp / "model.pt", net, spec, preprocessing, rank=card["rank"], study=card["study"], trial=card["trial"])
        (tmp / "arch.json").write_text(json.dumps(spec.to_dict(), indent=2))
        with warnings.catch_warnings(), torch.device("cpu"):
            warnings.simplefilter("ignore")  # TorchScript is deprecated upstream but still what plain torch loads
            traced = torch.jit.trace(packaged, _example_inputs(spec))
        traced.save(str(tmp / "model.ts"))
        onnx_info = write_onnx(packaged, spec, tmp / "model.onnx")
        card = {**card, "onnx": onnx_info}
        (tmp / "card.json").write_text(json.dumps(card, indent=2))
        (tmp / "card.md").write_text(card_markdown(card))
        predictions.to_csv(tmp / "test_predictions.csv", index=False)
        plot_reliability(calibration.test_before, calibration.test_after, calibration.temperature, tmp / "reliability.png",
                         f"rank {card['rank']} (trial {card['trial']}): test split, {card['test']['n_images']} galaxies")
        old = folder.with_name(f".{folder.name}.{os.getpid()}.old")
        if folder.exists():
            folder.rename(old)
        tmp.rename(folder)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return onnx_info


def _register_artifacts(study: Any, rank: int, trial_number: int, folder: Path, results: Path) -> None:
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
