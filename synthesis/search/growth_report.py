"""What progressive growth found (:mod:`synthesis.search.progressive`): its steps, why it stopped, and its report.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from galaxy_common import pyplot, save_figure
from galaxy_common import atomic_write_text


@dataclass
class GrowthStep:
    step: int
    layer: int  # blocks in the child network
    k: int  # kernel size of the new block
    channels: int
    placement: str
    score: float  # validation accuracy after the step's epoch (balanced accuracy with --objective balanced_acc)
    trial: int
    parent_trial: int | None
    chosen: bool = False


@dataclass
class GrowthResult:
    steps: list[GrowthStep] = field(default_factory=list)
    stop_reason: str = ""
    best_trial: int | None = None
    promotions: list[dict[str, Any]] = field(default_factory=list)  # --fidelities: children trained on


def write_growth_report(result: GrowthResult, results: Path) -> list[Path]:
    """``growth_report.json`` (one row per child) and ``growth.png`` (val accuracy vs depth)."""
    plt = pyplot()
    rows = [dataclasses.asdict(s) for s in result.steps]
    body = {"steps": rows, "stop_reason": result.stop_reason, "best_trial": result.best_trial,
            "promotions": result.promotions}
    json_path = atomic_write_text(Path(results) / "growth_report.json", json.dumps(body, indent=2))
    fig, ax = plt.subplots(figsize=(6.5, 4))
    df = pd.DataFrame(rows)
    if len(df):
        ax.scatter(df["layer"], df["score"], c="#bbbbbb", s=18, label="candidates")
        chosen = df[df["chosen"]]
        ax.plot(chosen["layer"], chosen["score"], "o-", color="#c44e52", label="chosen")
        for _, r in chosen.iterrows():
            ax.annotate(f"{r['channels']}ch", (r["layer"], r["score"]), textcoords="offset points", xytext=(4, 6), fontsize=8)
    ax.set_xlabel("blocks in the network")
    ax.set_ylabel("validation score after the step's epoch")
    ax.set_title(f"progressive growth: {result.stop_reason}", fontsize=9)
    ax.legend(loc="lower right", fontsize=8)
    png = save_figure(fig, Path(results) / "growth.png")
    return [json_path, png]


def summarise(result: GrowthResult) -> list[dict[str, Any]]:
    return [{"step": s.step, "blocks": s.layer, "channels": s.channels, "placement": s.placement,
             "score": round(s.score, 4), "trial": s.trial, "chosen": "*" if s.chosen else ""} for s in result.steps]
