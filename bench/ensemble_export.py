"""Is the exported ensemble better than the one model it would otherwise be? (issue #37, docs/BENCHMARKS.md §25)

For each study named, ``galaxy-synth export --ensemble K`` is run as a user would (the top K trials fully
trained or reused, greedy selection on the validation split, a temperature for the average), then its card is
read: the ensemble's test accuracy minus each candidate's on the same test galaxies (paired bootstrap over
galaxies, in the card), log-loss, ECE and AURC beside every member's, the share of the errors held by the 20%
least certain galaxies, summed FLOPs against ResNet-18's at the same input size and CPU latency. ResNet-18's
own test accuracy is taken from ``bench/ground_truth/<data>-references.csv`` where ``bench/anytime.py
evaluate`` trained it on the same split (not per galaxy: unpaired, binomial SE). Every full training the
export pays for lands in the study's ground-truth store; its rows are appended to
``bench/ground_truth/<data>-ensemble-<study>.csv``.

    .venv/bin/python bench/ensemble_export.py --results ../runs/anytime --studies anytime-gz2-tpe-default-s0 \\
        --candidates 5 --full-epochs 15 --out docs/ensemble_export.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def export_ensemble(results: Path, study: str, candidates: int, full_epochs: int) -> float:
    """Run the user's command; its wall seconds."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "galaxy_synth", "export", "--results", str(results), "--study", study,
                    "--top", "1", "--ensemble", str(candidates), "--full-epochs", str(full_epochs), "--no-progress"],
                   check=True, cwd=ROOT)
    return time.perf_counter() - started


def keep_ground_truth(results: Path, study: str, full_epochs: int, dataset: str) -> Path:
    """Every full training of this study at ``full_epochs`` (the export's and any earlier) into bench/ground_truth/."""
    from synthesis.full_training import open_ground_truth
    from synthesis.locations import default_storage_url

    table = open_ground_truth(default_storage_url(results)).table(study, full_epochs)
    path = ROOT / "bench" / "ground_truth" / f"{dataset}-ensemble-{study}.csv"
    table.to_csv(path, index=False)
    return path


def resnet18(dataset: str) -> dict | None:
    """ResNet-18's 2-seed mean test accuracy on this data's split, where bench/anytime.py trained it."""
    import pandas as pd

    path = ROOT / "bench" / "ground_truth" / f"{dataset}-references.csv"
    if not path.exists():
        return None
    table = pd.read_csv(path)
    rows = table[table["reference"] == "resnet18"]
    return {"accuracy": float(rows["accuracy"].mean()), "seeds": int(len(rows)), "mflops": float(rows["mflops"].iloc[0])} \
        if len(rows) else None


def resnet18_mflops(card: dict) -> float:
    """ResNet-18 (the project's reference, small-image stem) at the ensemble's input size and classes, counted by
    the same FLOP counter as every searched network."""
    from synthesis.models import spec_cost
    from synthesis.models.references import ReferenceSpec

    spec = ReferenceSpec("resnet18", num_classes=len(card["class_names"]), image_size=card["input"]["size"],
                         n_extra=len(card["extra_inputs"]["names"]))
    return spec_cost(spec)[1] / 1e6


def summary(card: dict, wall_seconds: float) -> dict:
    """The numbers of one ensemble card that the issue's target reads."""
    test, paired = card["test"], card["test"]["paired"]
    members = test["members"]
    by_val, on_test = paired["candidates"][paired["best_by_validation"]], paired["candidates"][paired["best_on_test"]]
    return {
        "study": card["study"], "test_images": test["n_images"],
        "members": [m["trial"] for m in card["ensemble"]["members"]], "weights": [m["weight"] for m in card["ensemble"]["members"]],
        "candidates": card["ensemble"]["candidate_trials"],
        "ensemble": test["ensemble"], "members_metrics": members,
        "candidates_paired": paired["candidates"],
        "vs_best_by_validation": {"trial": paired["best_by_validation"], **by_val},
        "vs_best_on_test": {"trial": paired["best_on_test"], **on_test},
        "log_loss_below_every_member": all(test["ensemble"]["log_loss"] < m["log_loss"] for m in members.values()),
        "aurc": {k: v["aurc"] for k, v in card["risk_coverage"]["curves"].items()},
        "errors_in_least_certain_20pct": test["errors_in_least_certain"]["share_of_errors"],
        "mflops": card["flops_per_image"] / 1e6, "params": card["params"],
        "cpu_latency_ms": card["cpu_latency"]["median_ms"], "export_wall_seconds": wall_seconds,
    }


def markdown(rows: list[dict]) -> str:
    head = ("| study | members | ensemble acc | best member (val) acc | paired Δ [95%] | best on test: Δ [95%] | "
            "log-loss ens / best member | ECE ens | AURC ens / member | errors in 20% least certain | MFLOPs (× ResNet-18) |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|\n")
    out = []
    for r in rows:
        v, t = r["vs_best_by_validation"], r["vs_best_on_test"]
        best = r["members_metrics"].get(v["trial"]) or {}
        aurc = list(r["aurc"].values())
        ratio = f" ({r['mflops'] / r['resnet18_mflops']:.3f}×)" if r.get("resnet18_mflops") else ""
        out.append(f"| {r['study']} | {len(r['members'])} ({'+'.join(map(str, r['members']))}) | {r['ensemble']['accuracy']:.4f} | "
                   f"{r['ensemble']['accuracy'] - v['difference']:.4f} (t{v['trial']}) | {v['difference']:+.4f} "
                   f"[{v['ci95'][0]:+.4f}, {v['ci95'][1]:+.4f}] | {t['difference']:+.4f} [{t['ci95'][0]:+.4f}, {t['ci95'][1]:+.4f}] "
                   f"(t{t['trial']}) | {r['ensemble']['log_loss']:.4f} / {best.get('log_loss', float('nan')):.4f} | "
                   f"{r['ensemble']['ece']:.4f} | {aurc[0]:.4f} / {aurc[-1]:.4f} | {r['errors_in_least_certain_20pct']:.0%} | "
                   f"{r['mflops']:.1f}{ratio} |")
    return head + "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, required=True, help="the results folder holding the studies")
    parser.add_argument("--studies", nargs="+", required=True, help="study names (each gets models/ensemble/)")
    parser.add_argument("--candidates", type=int, default=5, help="--ensemble K: the top K fully trained")
    parser.add_argument("--full-epochs", type=int, default=15, help="full training epochs (the product's default is 30)")
    parser.add_argument("--reference-data", default=None, help="data folder name for ResNet-18's row, e.g. gz2_spiral_dev")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "ensemble_export.json")
    args = parser.parse_args(argv)
    results = args.results.resolve()
    previous = {r["study"]: r for r in (json.loads(args.out.read_text())["rows"] if args.out.exists() else [])}
    for study in args.studies:
        wall = export_ensemble(results, study, args.candidates, args.full_epochs)
        card = json.loads((results / "studies" / study / "models" / "ensemble" / "card.json").read_text())
        row = summary(card, wall)
        reference = resnet18(args.reference_data) if args.reference_data else None
        row["resnet18_mflops"] = resnet18_mflops(card)
        row["resnet18_accuracy"] = reference["accuracy"] if reference else None
        keep_ground_truth(results, study, args.full_epochs, args.reference_data or "data")
        previous[study] = row
        rows = list(previous.values())
        args.out.write_text(json.dumps({"command": " ".join(sys.argv), "full_epochs": args.full_epochs,
                                        "candidates": args.candidates, "rows": rows}, indent=2))
    print(markdown(list(previous.values())))


if __name__ == "__main__":
    main()
