"""Where a calibration was measured, and whether a study lies inside it.

A calibration is fitted on trials of one kind (a data set, an image size, a FLOP range, a trial
schedule and precision) against their full-training results. Outside that kind its score is an
extrapolation: the shipped gz1 calibration (32 px, ≤ 40 MFLOPs) scored a below-chance trial of the
embedded set at 64 px 0.797. :func:`domain_of` summarises the rows a calibration was fitted on;
:func:`outside` lists, in words, how a study differs from it.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
import pandas as pd

# Trial settings that change what a metric means (a 2-epoch train loss at 64 px is not one at 32 px).
SETTINGS = ("size", "epochs", "schedule", "warmup", "precision", "loss", "max_samples")
RANGE_MARGIN = 0.1  # in log10 units: 26% beyond the fitted range still counts as inside


def domain_of(rows: pd.DataFrame, settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The kind of trials a calibration was fitted on: datasets, trial settings, size ranges.

    ``rows``: the fitted rows (ground-truth CSV rows carry ``dataset`` and ``trial_*`` columns);
    ``settings``: the study's frozen settings when all rows come from one study.
    """
    out: dict[str, Any] = {}
    if "dataset" in rows.columns:
        out["datasets"] = sorted(map(str, rows["dataset"].dropna().unique()))
    for name in SETTINGS:
        col = f"trial_{name}"
        if col in rows.columns:
            out[name] = sorted({_plain(v) for v in rows[col].dropna().unique()}, key=str)
        elif settings is not None and name in settings:
            out[name] = [_plain(settings[name])]
    if settings is not None and "data" in settings and "datasets" not in out:
        out["datasets"] = [str(settings["data"] or "embedded")]
    for metric in ("log_flops", "log_params"):
        if metric in rows.columns:
            values = pd.to_numeric(rows[metric], errors="coerce").to_numpy(float)
            values = values[np.isfinite(values)]
            if values.size:
                out[metric] = [float(values.min()), float(values.max())]
    return out


def outside(domain: Mapping[str, Any], study: Mapping[str, Any]) -> list[str]:
    """How a study falls outside a calibration's domain, one phrase each (empty: inside)."""
    found = differences(domain, study)
    return found["data"] + found["settings"]


def differences(domain: Mapping[str, Any], study: Mapping[str, Any]) -> dict[str, list[str]]:
    """How a study differs from a calibration's domain: ``data`` (another data set) and ``settings``
    (trial settings or architecture sizes the calibration never saw), one phrase each.

    ``study``: ``dataset``, the :data:`SETTINGS`, and ``max_mflops`` (0/None = uncapped).
    An empty ``domain`` (a calibration from before domains were recorded) differs in nothing.
    """
    data = []
    if domain.get("datasets") and str(study.get("dataset")) not in domain["datasets"]:
        data.append(f"data {study.get('dataset')!r} (fitted on {', '.join(domain['datasets'])})")
    reasons = []
    for name in SETTINGS:
        if name in domain and name in study and _plain(study[name]) not in domain[name]:
            reasons.append(f"{name} {study[name]!r} (fitted on {', '.join(map(str, domain[name]))})")
    if "log_flops" in domain:
        cap = study.get("max_mflops")
        high = domain["log_flops"][1] + RANGE_MARGIN
        if not cap or math.log10(float(cap) * 1e6) > high:
            reasons.append(f"architectures up to {'no cap' if not cap else f'{cap:g} MFLOPs'} "
                           f"(fitted up to {10 ** domain['log_flops'][1] / 1e6:.0f} MFLOPs)")
    return {"data": data, "settings": reasons}


def _plain(value: Any) -> Any:
    """Numbers compare as numbers whether they came from JSON, a CSV or the settings."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, float, np.integer, np.floating)):
        f = float(value)
        return int(f) if f.is_integer() else round(f, 6)
    return value
