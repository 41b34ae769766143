"""How well the latency table predicts a network's real time (issue #38, item 4).

Samples ``--networks`` architectures of the search space (every block type, plain/residual/inverted and the
equivariant c4/d4; random sampler, brought under ``--max-mflops`` as trials are), predicts each one's ms per
image from a fresh operator-time table (synthesis.models.LatencyTable, one CPU thread), then measures the
whole network on one thread at batch 1 and at the catalogue batch (median of ``--repeats`` passes, eval mode,
channels-last, as predict runs it). Reports, per batch, Spearman's ρ between predicted and measured time
and the median absolute percentage error, beside ρ of FLOPs against measured time (what ranked networks
before ``--cost time``); writes the rows and figures as JSON and a scatter PNG.

    OMP_NUM_THREADS=1 .venv/bin/python bench/latency_model.py          # 60 networks at 32 px; ~15 min on a quiet machine
    OMP_NUM_THREADS=1 .venv/bin/python bench/latency_model.py --quick  # 4 tiny networks, seconds: does it run

Run it on a quiet machine: a busy one slows the whole networks and the operators unevenly.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def sample_networks(n: int, size: int, max_mflops: float, seed: int) -> list:
    """``n`` architectures of the whole search space (every block type), as trials would train them."""
    import optuna

    from synthesis.search.space import fit_to_caps, space_for

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = space_for("auto", [], True)  # plain, residual, inverted, c4, d4
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    specs = []
    for _ in range(n):
        trial = study.ask()
        spec, _ = space.suggest(trial, num_classes=4, image_size=size, n_extra=0)
        specs.append(fit_to_caps(spec, None, max_mflops * 1e6 if max_mflops else None, space.widths, space.stem_widths).spec)
        study.tell(trial, 0.0)
    return specs


def measure(specs: list, batches: tuple[int, ...], repeats: int, cache: Path) -> list[dict]:
    """Per network: predicted and measured ms per image at each batch, FLOPs, and the table's own timing cost."""
    from synthesis.models import LatencyTable, build_model, measured_ms_per_image, spec_cost

    table = LatencyTable(cache)
    rows = []
    for spec in specs:
        t0 = time.perf_counter()
        predicted = {b: table.predict(spec, b) for b in batches}
        table_seconds = time.perf_counter() - t0
        model = build_model(spec)
        row = {"architecture": spec.describe(), "block": spec.block, "flops": spec_cost(spec)[1],
               "table_seconds": table_seconds}
        for b in batches:
            row[f"predicted_ms_b{b}"] = predicted[b]
            row[f"measured_ms_b{b}"] = measured_ms_per_image(model, spec, b, repeats)
        rows.append(row)
        print(f"{row['architecture']:<60} " + "  ".join(
            f"b{b}: {row[f'predicted_ms_b{b}']:.3f} predicted, {row[f'measured_ms_b{b}']:.3f} measured ms" for b in batches),
            flush=True)
    return rows


def summarise(rows: list[dict], batches: tuple[int, ...]) -> dict:
    from scipy.stats import spearmanr

    out = {}
    for b in batches:
        predicted = [r[f"predicted_ms_b{b}"] for r in rows]
        measured = [r[f"measured_ms_b{b}"] for r in rows]
        out[f"batch {b}"] = {
            "spearman_predicted_vs_measured": float(spearmanr(predicted, measured).statistic),
            "spearman_flops_vs_measured": float(spearmanr([r["flops"] for r in rows], measured).statistic),
            "median_abs_pct_error": 100 * statistics.median(abs(p - m) / m for p, m in zip(predicted, measured)),
            "median_predicted_over_measured": statistics.median(p / m for p, m in zip(predicted, measured)),
        }
    return out


def scatter(rows: list[dict], batches: tuple[int, ...], summary: dict, path: Path) -> None:
    from galaxy_common import pyplot, save_figure

    plt = pyplot()
    fig, axes = plt.subplots(1, len(batches), figsize=(5.5 * len(batches), 4.8), squeeze=False)
    for ax, b in zip(axes[0], batches):
        for block in sorted({r["block"] for r in rows}):
            mine = [r for r in rows if r["block"] == block]
            ax.scatter([r[f"measured_ms_b{b}"] for r in mine], [r[f"predicted_ms_b{b}"] for r in mine], s=18, label=block)
        values = [r[f"{k}_ms_b{b}"] for r in rows for k in ("measured", "predicted")]
        low, high = min(values), max(values)
        ax.plot([low, high], [low, high], color="grey", lw=0.8, ls="--")
        s = summary[f"batch {b}"]
        ax.set(xscale="log", yscale="log", xlabel="measured ms per image (one thread)", ylabel="predicted ms per image",
               title=f"batch {b}: ρ = {s['spearman_predicted_vs_measured']:.2f} (FLOPs ρ = "
                     f"{s['spearman_flops_vs_measured']:.2f}), MdAPE {s['median_abs_pct_error']:.0f}%")
        ax.title.set_fontsize(9)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--networks", type=int, default=60, help="architectures sampled (default: 60)")
    p.add_argument("--size", type=int, default=32, help="image side (default: 32, the CPU default)")
    p.add_argument("--max-mflops", type=float, default=40.0, help="the FLOP cap they are brought under (default: 40)")
    p.add_argument("--batch", type=int, default=256, help="the catalogue batch, beside batch 1 (default: 256)")
    p.add_argument("--repeats", type=int, default=7, help="timed passes per network and batch, median (default: 7)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=ROOT / "results" / "bench", help="folder of latency_model.json/.png")
    p.add_argument("--quick", action="store_true", help="4 tiny networks at 16 px, batch 8: checks that it runs")
    args = p.parse_args(argv)
    if args.quick:
        args.networks, args.size, args.max_mflops, args.batch, args.repeats = 4, 16, 2.0, 8, 2
    import torch

    torch.set_num_threads(1)
    batches = (1, args.batch)
    specs = sample_networks(args.networks, args.size, args.max_mflops, args.seed)
    with tempfile.TemporaryDirectory() as cache:  # a fresh table: what a new study pays, measured honestly
        rows = measure(specs, batches, args.repeats, Path(cache))
    summary = summarise(rows, batches)
    report = {"settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
              "torch": torch.__version__, "summary": summary, "rows": rows,
              "table_seconds_total": sum(r["table_seconds"] for r in rows)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latency_model.json").write_text(json.dumps(report, indent=2))
    scatter(rows, batches, summary, args.out / "latency_model.png")
    print(json.dumps(summary, indent=2))
    print(f"wrote {args.out / 'latency_model.json'} and latency_model.png")
    return report


if __name__ == "__main__":
    main()
