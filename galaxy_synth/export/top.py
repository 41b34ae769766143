"""``galaxy-synth export``: rank the study's trials, fully train (or reuse) the best, package each into its folder.

Ranking uses the current calibration (as ``rank`` does); weights come from ``correlate``'s
ground truth where they exist (same study, trial, epochs and seed), otherwise the trial is
fully trained here with the same loop (:mod:`synthesis.full_training`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from scipy.special import softmax
from torch import nn

from galaxy_common import atomic_write_text
from galaxy_synth.export.card import Ranking, model_card
from galaxy_synth.export.ensemble import ensemble_candidates, export_ensemble
from galaxy_synth.export.ensemble_card import selective_classification
from galaxy_synth.export.folder import register_artifacts, test_predictions, write_model_folder
from galaxy_synth.export.settings import ExportSettings
from galaxy_synth.predict import training_domain
from synthesis import GalaxySynthError
from synthesis.full_training import (
    check_full_epochs,
    open_ground_truth,
    stored_or_trained,
    train_jobs,
)
from synthesis.models import PackagedModel
from synthesis.models import ArchSpec, model_spec_from_dict
from synthesis.search import metrics_table
from synthesis.search import find_calibration, reopen_study
from synthesis.training import TemperatureCalibration, calibrate_network, split_view_logits
from synthesis.training import dihedral_views, mirror_permutation


@dataclass
class ExportedModel:
    """One packaged model: its rank (the knee ranks after the top ones), trial, folder and card."""

    rank: int
    trial: int
    folder: Path
    card: dict[str, Any]


def export_top(settings: ExportSettings) -> list[ExportedModel]:
    """Fully train (or reuse) and package the study's ``top`` best trials into ``<study folder>/models/rank{i}/``.

    ``by``: what ranks them (see :func:`synthesis.search.ranking.metrics_table`): the study's objective, the
    current calibration's proxy, validation accuracy or balanced accuracy. ``knee``: also the front's knee.
    """
    if settings.top < 1 or settings.ensemble < 0 or settings.ensemble_members < 1:
        raise GalaxySynthError("--top, --ensemble and --ensemble-members must be >= 1")
    check_full_epochs(settings.full_epochs)
    opened = reopen_study(settings.storage_url, settings.study, settings.results_dir, settings.progress, settings.device)
    training = settings.full_training(opened.settings)
    name = opened.study.study_name
    proxy, source = find_calibration(settings.calibration, settings.results_dir)
    table = metrics_table(opened.study, proxy, by=settings.by)
    table = table[table["finished"]]
    if table.empty:
        raise GalaxySynthError(f"study {name!r} has no completed trials to export")
    chosen = [int(n) for n in table["trial"].head(settings.top)]
    knee_trial = _knee_trial(table, opened.attrs) if settings.knee else None
    if knee_trial is not None and knee_trial not in chosen:
        chosen.append(knee_trial)  # packaged as models/knee/ beside the top ones
    ranking = Ranking(*(dict(zip(table["trial"].astype(int), table[c])) for c in ("proxy_score", "rank_score")),
                      proxy, source, settings.by)
    store = open_ground_truth(training.storage_url)
    candidates = [int(n) for n in table["trial"].head(settings.ensemble)]  # the ensemble's (--ensemble K)
    to_train = chosen + [n for n in candidates if n not in chosen]
    missing = [j for j in training.jobs(to_train) if not _weights_stored(store.get(name, j.trial, training.epochs, j.seed))]
    trained = {r["trial"] for r in train_jobs(opened, training, store, missing, len(to_train), "full training")
               if r["trained_now"]}
    trials = {t.number: t for t in opened.study.get_trials(deepcopy=False)}
    prep = opened.prepared()
    test = prep.split("test", torch.device("cpu"))
    val = prep.split("val", torch.device("cpu"))  # where the temperature is fitted (trials never score on all of it)
    domain = training_domain(prep)
    exported = []
    for rank, job in enumerate(training.jobs(chosen), start=1):  # one seed: one job per trial, in rank order
        number = job.trial
        record, net, trained_now = stored_or_trained(store, training, job, trials[number].user_attrs, prep,
                                                     need_model=True)
        origin = "trained by galaxy-synth export" if trained_now or number in trained else \
            f"reused from an earlier full training by correlate or export ({record.weights_path})"
        net = net.cpu().eval()
        spec = model_spec_from_dict(trials[number].user_attrs["arch"])
        calibration, packaged, selective = _calibrated_package(net, spec, prep, val, test, settings.target_error)
        card = model_card(opened, prep, trials[number], net, packaged, test, rank, ranking,
                          {"full_epochs": training.epochs, "seed": job.seed, "weights": origin})
        card["probability_calibration"], card["selective"] = calibration.to_dict(), selective  # predict's `reliable`
        card["input"]["domain"] = domain  # what predict compares each image with (domain_z)
        card["knee"] = number == knee_trial  # the cheapest trial within one SE of the best (export --knee)
        folder = opened.settings.study_dir / "models" / ("knee" if rank > settings.top else f"rank{rank}")
        card["onnx"] = write_model_folder(folder, net, packaged, spec, card, prep.preprocessing,
                                          test_predictions(opened, prep, calibration.test_probabilities), calibration)
        exported.append(ExportedModel(rank, number, folder, card))
        register_artifacts(opened.study, rank, number, folder, settings.results_dir)
    _write_summary(exported, opened.settings.study_dir / f"top{settings.top}_models.json")
    if candidates:  # rank 0: the ensemble (its card's rank says so); not in the summary of the top ones
        folder, card = export_ensemble(opened, prep, ensemble_candidates(opened, prep, training, store, trials, candidates,
                                       val, test), val, test, domain, settings.ensemble_members, settings.target_error)
        exported.append(ExportedModel(0, card["trial"][0], folder, card))
    return exported


def _calibrated_package(net: nn.Module, spec: ArchSpec, prep: Any, val: Any, test: Any, target_error: float
                        ) -> tuple[TemperatureCalibration, PackagedModel, dict[str, Any]]:
    """The temperature fitted on ``val`` (and measured on ``test``), the packaged model that applies it, and the
    reliability threshold for ``target_error`` chosen on ``val``'s calibrated probabilities."""
    perm = mirror_permutation(prep.class_names, prep.preprocessing.mirror_pairs)
    calibration = calibrate_network(net, prep.normalizer, val, test, dihedral_views(prep.allow_flips), perm)
    val_probabilities = softmax(split_view_logits(net, prep.normalizer, val, [(0, False)], perm)[0] / calibration.temperature, axis=1)
    selective = selective_classification(val_probabilities, val.y.cpu().numpy(), target_error)
    return (calibration, PackagedModel(net, prep.normalizer, prep.extra_scaler, spec.n_extra, calibration.temperature).eval(),
            selective)


def _write_summary(exported: list[ExportedModel], path: Path) -> None:
    summary = [{"rank": e.rank, "trial": e.trial, "folder": str(e.folder), "architecture": e.card["architecture"],
                "params": e.card["params"], "ranked_by": e.card["ranked_by"]["criterion"],
                "rank_score": e.card["ranked_by"]["score"], "proxy_score": e.card["proxy"]["score"], **{k: e.card["test"][k] for k in
                ("accuracy", "balanced_accuracy", "macro_f1")}, "cpu_latency_ms": e.card["cpu_latency"]["median_ms"]}
               for e in exported]
    atomic_write_text(path, json.dumps(summary, indent=2))


def _knee_trial(table: Any, attrs: dict[str, Any]) -> int | None:
    from synthesis.search import cost_front, knee_of, score_images

    front = cost_front(table)
    point = knee_of(front, score_images(attrs, table["ranked_by"].iloc[0])) if len(front) else None
    return int(point["trial"]) if point is not None else None


def _weights_stored(record: Any) -> bool:
    return record is not None and Path(record.weights_path).is_file()
