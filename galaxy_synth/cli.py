"""``galaxy-synth``: the command line that wires ``synthesis``, ``proxies`` and ``correlation``.

Sub-commands:
  synth       run or resume an architecture-synthesis study (Optuna, SQLite by default)
  rank        rank a study's trials by the current proxy calibration, with every metric
  correlate   fit the composite proxy on a metrics table and report its cross-validated ranking
  export      fully train and package the study's top models (TorchScript, ONNX, model cards)
  predict     classify images with an exported model folder
  report      a static HTML report of a study (history, importances, calibration, top models)
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Sequence

EPILOG_SYNTH = """\
examples:
  galaxy-synth synth                                  # embedded procedural galaxies, 20 trials
  galaxy-synth synth --trials 60                      # resume the same study up to 60 completed trials
  galaxy-synth synth --data ../shared/data/gz1_dev --merge spiral_cw,spiral_acw=spiral --drop dont_know
  galaxy-synth synth --workers 2                      # two processes on this machine, one SQLite study
  galaxy-synth synth --storage postgresql+psycopg://user:pw@host/db --study gz1   # same line on every machine

data layouts accepted by --data:
  FOLDER/labels.csv     columns: 'file' (or 'id' + image extension), 'label_name'/'class' or integer
                        'label'; optional numeric extra inputs 'z', 'z_err' (or --extra-columns)
  FOLDER/<class>/*.jpg  an ImageFolder tree
  FILE.h5               Galaxy10 HDF5 as astroNN distributes it ('images', 'ans', optional 'redshift')

resume: run the same command again. --trials N counts COMPLETED trials across all runs and all
workers (the study stops at exactly N); a trial interrupted by a crash is re-queued (heartbeat)
and the data split is read back from the study.
"""


def _add_study_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--data", default=None, metavar="PATH",
                   help="dataset folder or .h5 file (default: the embedded procedural galaxy set)")
    g.add_argument("--size", type=int, default=64, help="image side in pixels after resizing (default: 64)")
    g.add_argument("--crop", type=float, default=None,
                   help="centre-crop fraction of each side before resizing (default: 0.5 for image folders, "
                        "where SDSS galaxies are small in the frame; 1.0 for HDF5 and the embedded set)")
    g.add_argument("--merge", action="append", default=[], metavar="A,B=NEW",
                   help="merge classes, e.g. spiral_cw,spiral_acw=spiral (repeatable)")
    g.add_argument("--drop", action="append", default=[], metavar="CLASS",
                   help="drop a class, e.g. dont_know (repeatable or comma-separated)")
    g.add_argument("--extra-columns", default=None, metavar="COLS",
                   help="comma-separated numeric labels.csv columns fed to the network "
                        "(default: whichever of z, z_err, redshift, redshift_err exist)")
    g.add_argument("--max-samples", type=int, default=2000,
                   help="training images per trial, a stratified subset of the train split (default: 2000)")
    g.add_argument("--val-subset", type=int, default=500,
                   help="validation images per trial, a fixed stratified subset (default: 500)")
    g.add_argument("--synthetic-n", type=int, default=3000,
                   help="number of generated galaxies when no --data is given (default: 3000)")
    s = p.add_argument_group("study")
    s.add_argument("--study", default="galaxy-synth", help="study name inside the storage (default: galaxy-synth)")
    s.add_argument("--storage", default=None, metavar="URL",
                   help="Optuna RDB storage URL (default: sqlite:///RESULTS/study.db); "
                        "e.g. postgresql+psycopg://user:pw@host/db to share a study between machines")
    s.add_argument("--results", default="results", metavar="DIR",
                   help="output folder: study.db, cache/, trials_proxy_metrics.csv, plots (default: ./results)")
    s.add_argument("--seed", type=int, default=0,
                   help="seed for the split, the sampler and each trial's init (default: 0)")
    s.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:1, mps")


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="galaxy-synth",
        description="Find good CNN architectures for galaxy-morphology classification with short, "
                    "scored training trials in a resumable Optuna study.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log Optuna's per-trial messages too")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("synth", help="run or resume an architecture-synthesis study",
                       description="Run or resume an Optuna study of galaxy CNNs: each trial samples an "
                                   "architecture and optimiser, trains it for --epochs on a bounded subset, "
                                   "and is scored on a fixed validation subset.",
                       epilog=EPILOG_SYNTH, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_study_args(p)
    t = p.add_argument_group("trials")
    t.add_argument("--trials", type=int, default=20, help="target number of COMPLETED trials in the study (default: 20)")
    t.add_argument("--epochs", type=int, default=2, help="training epochs per trial (default: 2)")
    t.add_argument("--loss", choices=("ce", "weighted_ce", "focal"), default="ce",
                   help="training loss for trials and, through each trial's stored settings, full training: "
                        "cross-entropy, class-weighted (inverse frequency) cross-entropy, or focal (γ=2, class-"
                        "weighted) for imbalanced sets such as gz1 (70%% ellipticals). Measured on gz1 (docs/BENCHMARKS.md §7): ce gives the best accuracy, weighted_ce/focal "
                        "≈16 points more balanced accuracy for ≈12 less accuracy (default: ce)")
    t.add_argument("--label-smoothing", type=float, default=0.0, help="label smoothing for ce / weighted_ce (default: 0)")
    t.add_argument("--max-params", type=int, default=5_000_000,
                   help="prune architectures with more parameters before training (default: 5000000)")
    t.add_argument("--max-mflops", type=float, default=None,
                   help="prune architectures above this many forward MFLOPs per image before training "
                        "(default: no cap; ~300 keeps CPU trials under a minute at 64 px)")
    t.add_argument("--pruner", choices=("auto", "median", "none"), default="auto",
                   help="auto = median pruning when --epochs >= 4, none for 2-epoch trials (default: auto)")
    t.add_argument("--objective", choices=("composite", "val_acc", "multi"), default="composite",
                   help="what TPE maximises: composite = the calibrated proxy's predicted full-training accuracy "
                        "(default); val_acc = validation accuracy after --epochs; multi = composite and, as a "
                        "second objective to minimise, the parameter count (Pareto front, no pruning)")
    t.add_argument("--calibration", default=None, metavar="FILE",
                   help="proxy calibration JSON for a NEW study (default: RESULTS/proxy_weights.json if "
                        "'galaxy-synth correlate' wrote one, else the shipped default); a resumed study keeps its own")
    t.add_argument("--heartbeat-interval", type=int, default=10,
                   help="seconds between trial heartbeats; a trial silent for 3× this is re-queued (default: 10)")
    t.add_argument("--sampler", choices=("tpe", "random"), default="tpe",
                   help="how trials choose architectures: tpe (Optuna's TPE, constant liar for parallel workers) or "
                        "random (the baseline to compare against) (default: tpe)")
    t.add_argument("--strategy", choices=("tpe", "progressive"), default="tpe",
                   help="tpe: each trial samples a whole architecture (default). progressive: grow one network "
                        "block by block, each child inheriting its parent's trained weights (+3%% jitter), one epoch "
                        "per child, keep the best, stop when validation accuracy stops improving; needs "
                        "--objective val_acc, ignores --trials, writes RESULTS/growth_report.json and growth.png")
    t.add_argument("--growth-widths", default="16,32,64", metavar="W,W,...",
                   help="progressive: widths tried for each new block (default: 16,32,64)")
    t.add_argument("--max-blocks", type=int, default=8, help="progressive: largest network, in blocks (default: 8)")
    t.add_argument("--workers", type=int, default=1,
                   help="parallel worker processes on this machine, sharing the study's storage, each with cores/N "
                        "torch threads; logs in RESULTS/workers/ (default: 1). To use several machines, run the same "
                        "command on each with one --storage postgresql+psycopg://... URL")
    t.add_argument("--worker-id", type=int, default=None, help=argparse.SUPPRESS)  # set by --workers for its children
    t.add_argument("--no-progress", action="store_true", help="no progress bars (e.g. for log files)")
    p.set_defaults(func=cmd_synth)

    r = sub.add_parser("rank", help="rank a study's trials by the current proxy calibration",
                       description="Rescore every completed trial from its stored raw metrics with the current "
                                   "calibration (the values TPE saw are not touched), print the best and write "
                                   "RESULTS/trials_proxy_metrics.csv with every metric.")
    r.add_argument("--study", default="galaxy-synth", help="study name (default: galaxy-synth)")
    r.add_argument("--storage", default=None, metavar="URL", help="Optuna storage URL (default: sqlite:///RESULTS/study.db)")
    r.add_argument("--results", default="results", metavar="DIR", help="results folder (default: ./results)")
    r.add_argument("--calibration", default=None, metavar="FILE",
                   help="proxy calibration JSON (default: RESULTS/proxy_weights.json, else the shipped default)")
    r.add_argument("--top", type=int, default=10, help="rows to print (default: 10)")
    r.set_defaults(func=cmd_rank)

    c = sub.add_parser("correlate", help="calibrate the composite proxy against full training and report its ranking",
                       description="Study mode (default): pick --ground-truth K completed trials of a study (the "
                                   "current top few plus a quantile spread of the rest), train each with the full "
                                   "budget (--full-epochs, cosine schedule, the trial's own optimiser, all training "
                                   "images; the same loop as trials), score them on the test split that trials never "
                                   "saw, store each result in the study's database as soon as it finishes (so a killed "
                                   "run resumes), then fit the composite proxy on them. Table mode (--table): fit and "
                                   "report on any CSV of metrics with a target column. Both report out-of-fold "
                                   "Spearman ρ, Kendall τ and top-3 recall (repeated K-fold, leave-one-out for small "
                                   "sets) next to every single metric, the best single metric chosen inside each "
                                   "training fold and the seed's weights, and write correlation_report.json/.csv, "
                                   "proxy_weights.json (fitted on all rows) and PNG plots to RESULTS.",
                       epilog="examples:\n  galaxy-synth correlate --ground-truth 24 --full-epochs 30\n"
                              "  galaxy-synth correlate --table ../shared/benchmarks/nb201_zc_cifar10.csv --target val_accuracy",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    c.add_argument("--table", default=None, metavar="CSV", help="table mode: CSV with one row per architecture, metric columns and the target")
    c.add_argument("--target", default="accuracy",
                   help="target column; in study mode accuracy, balanced_accuracy or macro_f1 (default: accuracy; "
                        "the report shows all three)")
    c.add_argument("--features", default=None, metavar="COLS",
                   help="table mode: comma-separated metric columns (default: every numeric, non-constant column but the target)")
    c.add_argument("--ground-truth", type=int, default=24, metavar="K", help="study mode: architectures to fully train (default: 24)")
    c.add_argument("--top", type=int, default=3, help="study mode: of those, the current best by proxy score (default: 3)")
    c.add_argument("--full-epochs", type=int, default=30, help="study mode: epochs of full training (default: 30)")
    c.add_argument("--study", default="galaxy-synth", help="study mode: study name (default: galaxy-synth)")
    c.add_argument("--storage", default=None, metavar="URL", help="study mode: storage URL (default: sqlite:///RESULTS/study.db)")
    c.add_argument("--device", default="auto", help="study mode: auto, cpu, cuda, mps")
    c.add_argument("--folds", type=int, default=5, help="K of repeated K-fold (default: 5; leave-one-out below 2K rows)")
    c.add_argument("--repeats", type=int, default=10, help="repeats of K-fold with fresh shuffles (default: 10)")
    c.add_argument("--seed", type=int, default=0, help="seed of full training, fold shuffles and bootstrap (default: 0)")
    c.add_argument("--seeds", type=int, default=1, metavar="N",
                   help="study mode: full-train each architecture with N seeds (SEED, SEED+1, ...) and fit on the mean; "
                        "one seed's ranking is itself noisy (default: 1)")
    c.add_argument("--results", default="results", metavar="DIR", help="output folder (default: ./results)")
    c.add_argument("--no-progress", action="store_true", help="no progress bars")
    c.set_defaults(func=cmd_correlate)

    e = sub.add_parser("export", help="fully train and package the study's top models",
                       description="Rank the study's completed trials with the current calibration, take the top "
                                   "--top, reuse the full-trained weights 'galaxy-synth correlate' stored for them (same "
                                   "--full-epochs and --seed) or train them now with the same loop, and write "
                                   "RESULTS/models/rank{1..N}/ (model.pt state dict, arch.json, model.ts TorchScript, "
                                   "model.onnx when onnx is installed, card.json, card.md) and RESULTS/top{N}_models.json.",
                       epilog="example:\n  galaxy-synth export --top 3 --full-epochs 30\n"
                              "  python -c \"import torch; m = torch.jit.load('results/models/rank1/model.ts')\"",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    e.add_argument("--top", type=int, default=3, help="how many models (default: 3)")
    e.add_argument("--full-epochs", type=int, default=30, help="epochs of full training (default: 30, as correlate)")
    e.add_argument("--study", default="galaxy-synth", help="study name (default: galaxy-synth)")
    e.add_argument("--storage", default=None, metavar="URL", help="storage URL (default: sqlite:///RESULTS/study.db)")
    e.add_argument("--results", default="results", metavar="DIR", help="results folder (default: ./results)")
    e.add_argument("--calibration", default=None, metavar="FILE",
                   help="proxy calibration for the ranking (default: RESULTS/proxy_weights.json, else the shipped default)")
    e.add_argument("--device", default="auto", help="auto, cpu, cuda, mps (for any training needed)")
    e.add_argument("--seed", type=int, default=0, help="seed of full training (default: 0, as correlate)")
    e.add_argument("--no-progress", action="store_true", help="no progress bars")
    e.set_defaults(func=cmd_export)

    pr = sub.add_parser("predict", help="classify images with an exported model",
                        description="Classify image files (or every image in folders) with an exported model folder "
                                    "and write a CSV: file, predicted class, confidence, one probability per class.",
                        epilog="example:\n  galaxy-synth predict --model results/models/rank1 --tta new_images/ -o preds.csv",
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    pr.add_argument("images", nargs="+", metavar="IMAGE", help="image files and/or folders (searched recursively)")
    pr.add_argument("--model", required=True, metavar="DIR", help="an exported model folder, e.g. results/models/rank1")
    pr.add_argument("--extra", default=None, metavar="CSV",
                    help="CSV of the model's extra inputs (e.g. z, z_err) with a 'file' or 'id' column; "
                         "required when the model card lists extra inputs")
    pr.add_argument("--tta", action="store_true",
                    help="average over 4 rotations × mirror flip (mirror-image classes swapped on flips)")
    pr.add_argument("-o", "--out", default="predictions.csv", metavar="CSV", help="output CSV (default: predictions.csv)")
    pr.set_defaults(func=cmd_predict)

    rp = sub.add_parser("report", help="write a static HTML report of a study",
                        description="Write RESULTS/report/index.html (open it in any browser; no server): data and "
                                    "class balance, optimisation history, parameter importances, the proxy's "
                                    "cross-validated calibration (after correlate) and the exported top models with "
                                    "their confusion matrices (after export).")
    rp.add_argument("--study", default="galaxy-synth", help="study name (default: galaxy-synth)")
    rp.add_argument("--storage", default=None, metavar="URL", help="storage URL (default: sqlite:///RESULTS/study.db)")
    rp.add_argument("--results", default="results", metavar="DIR", help="results folder (default: ./results)")
    rp.set_defaults(func=cmd_report)
    return parser


def _existing_storage(storage: str | None, results: Path, hint: str) -> str:
    """``--storage`` as given, else the results folder's SQLite database, which must exist."""
    from synthesis.errors import GalaxySynthError
    from synthesis.study import default_storage_url

    if storage:
        return storage
    if not (results / "study.db").exists():
        raise GalaxySynthError(f"no study database at {results / 'study.db'} (run 'galaxy-synth synth' first, or pass {hint})")
    return default_storage_url(results)


def cmd_rank(args: argparse.Namespace) -> int:
    import pandas as pd

    from proxies.composite import MissingMetricError
    from synthesis.errors import GalaxySynthError
    from synthesis.study import find_calibration, load_existing_study, metrics_table, write_table

    results = Path(args.results)
    url = _existing_storage(args.storage, results, "--storage")
    study = load_existing_study(args.study, url)
    proxy, source = find_calibration(args.calibration, results)
    try:
        df = metrics_table(study, proxy)
    except MissingMetricError as exc:
        raise GalaxySynthError(f"{exc}; the study's trials lack it (made by an older galaxy-synth?)") from None
    out = results / "trials_proxy_metrics.csv"
    write_table(df, out)
    done = df[df["state"] == "COMPLETE"]
    cols = ["trial", "proxy_score", "objective", "val_acc", "val_balanced_acc", "train_loss", "train_loss_cv",
            "grad_norm_mean", "gap", "zc_synflow", "zc_naswot", "params_count"]
    print(f"{len(done)} completed trials of study {args.study!r}, ranked by calibration {proxy.name!r} "
          f"({proxy.calibration_hash}, from {source}):")
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.float_format", "{:.4g}".format):
        print(done[[c for c in cols if c in done.columns]].head(args.top).to_string(index=False))
    print(f"\nwrote {out} (every trial, every metric)")
    return 0


def _print_correlation(report: dict, target: str) -> None:
    best = report["best_single_metric_in_fold"]
    proto = report["protocol"]
    print(f"{report['n_rows']} rows, target {target!r}, {proto['kind']} ({proto['folds']} folds × {proto['repeats']} repeats), out-of-fold:")
    ci = report["composite_spearman_cv_ci95"]
    print(f"  composite             ρ = {report['composite_spearman_cv']:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]  "
          f"τ = {report['composite_kendall_cv']:.3f}  top-3 recall = {report['composite_top3_recall_cv']:.2f}")
    print(f"  best single (in-fold) ρ = {best['spearman']:.3f}  τ = {best['kendall']:.3f}  "
          f"top-3 recall = {best['top3_recall']:.2f}  (chosen: {best['chosen']})")
    if "seed_weights_cv" in report:
        sw = report["seed_weights_cv"]
        print(f"  seed weights          ρ = {sw['spearman']:.3f}  τ = {sw['kendall']:.3f}  top-3 recall = {sw['top3_recall']:.2f}")
    if "val_acc_alone" in report:
        va = report["val_acc_alone"]
        print(f"  val_acc alone         ρ = {va['spearman']:.3f}  τ = {va['kendall']:.3f}  top-3 recall = {va['top3_recall']:.2f}")
    for t, r in report.get("other_targets", {}).items():
        print(f"  (composite fitted for {t}: ρ = {r['composite_spearman_cv']:.3f})")


def cmd_correlate(args: argparse.Namespace) -> int:
    from correlation.calibrate import calibrate_study, calibrate_table

    results = Path(args.results)
    if args.table is None:
        storage = _existing_storage(args.storage, results, "--storage / --table")
        _configure_threads()
        report, written = calibrate_study(storage, args.study, results, args.ground_truth, args.top, args.full_epochs,
                                          args.target, args.seed, args.device, args.folds, args.repeats,
                                          progress=not args.no_progress, seeds=args.seeds)
    else:
        features = [f.strip() for f in args.features.split(",")] if args.features else None
        report, written = calibrate_table(Path(args.table), args.target, results, features, args.folds, args.repeats, args.seed)
    _print_correlation(report, args.target)
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from galaxy_synth.export import export_top

    results = Path(args.results)
    storage = _existing_storage(args.storage, results, "--storage")
    _configure_threads()
    exported = export_top(storage, args.study, results, args.top, args.full_epochs, args.seed, args.device,
                          args.calibration, progress=not args.no_progress)
    for e in exported:
        t = e.card["test"]
        print(f"rank {e.rank}: trial {e.trial} {e.card['architecture']}  test acc {t['accuracy']:.3f}  "
              f"balanced {t['balanced_accuracy']:.3f}  macro-F1 {t['macro_f1']:.3f}  "
              f"{e.card['cpu_latency']['median_ms']:.2f} ms/img  → {e.folder}")
    print(f"wrote {results / f'top{args.top}_models.json'}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from galaxy_synth.predict import collect_images, load_model_dir, predict_files

    loaded = load_model_dir(args.model)
    files = collect_images(args.images)
    df = predict_files(loaded, files, args.extra, args.tta)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    df.to_csv(tmp, index=False)
    tmp.replace(out)
    counts = df["predicted"].value_counts().to_dict()
    print(f"{len(df)} image(s){' with TTA' if args.tta else ''}: " + ", ".join(f"{k} {v}" for k, v in counts.items())
          + f"; wrote {out}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from galaxy_synth.report import write_study_report

    results = Path(args.results)
    page = write_study_report(_existing_storage(args.storage, results, "--storage"), args.study, results)
    print(f"wrote {page} (open it in a browser)")
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    import pandas as pd

    from synthesis.study import (StudySettings, find_calibration, metrics_table, plot_history, run_study,
                                 summary_rows, write_table)

    settings = StudySettings(
        data=args.data, size=args.size, crop=args.crop, merge=args.merge, drop=args.drop,
        extra_columns=[c.strip() for c in args.extra_columns.split(",") if c.strip()] if args.extra_columns else None,
        max_samples=args.max_samples, val_subset=args.val_subset, seed=args.seed, epochs=args.epochs,
        trials=args.trials, storage=args.storage, study=args.study, device=args.device, results=args.results,
        max_params=args.max_params, max_mflops=args.max_mflops, pruner=args.pruner, synthetic_n=args.synthetic_n,
        heartbeat_interval=args.heartbeat_interval, progress=not args.no_progress,
        objective=args.objective, calibration=args.calibration, loss=args.loss, label_smoothing=args.label_smoothing,
        sampler=args.sampler, strategy=args.strategy,
    )
    if args.trials < 1 or args.epochs < 1:
        raise_usage("--trials and --epochs must be >= 1")
    if args.workers < 1:
        raise_usage("--workers must be >= 1")
    if args.worker_id is not None:
        settings.worker_id = args.worker_id
    _configure_threads()

    def announce(study) -> None:
        done = sum(1 for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE")
        print(f"study {settings.study!r} in {settings.storage_url}: {done} completed trial(s), target {settings.trials}",
              file=sys.stderr)

    if args.strategy == "progressive":
        return _synth_progressive(args, settings)
    if args.workers > 1:
        from galaxy_synth.workers import run_workers
        from synthesis.study import load_existing_study, prepare_study

        announce(prepare_study(settings)[0])  # validate and create the study once, before the workers race
        run_workers(args.argv, args.workers, settings.storage_url, settings.study, settings.trials,
                    settings.results_dir / "workers", progress=settings.progress, poll_seconds=settings.poll_seconds)
        study = load_existing_study(settings.study, settings.storage_url)
    else:
        study = run_study(settings, on_ready=announce)
    if args.worker_id is not None:
        return 0  # the parent writes the tables and plots once all workers are done
    results = settings.results_dir
    results.mkdir(parents=True, exist_ok=True)
    proxy, _ = find_calibration(args.calibration, results)
    write_table(metrics_table(study, proxy), results / "trials_proxy_metrics.csv")
    plot_history(study, results / "history.png")
    rows = summary_rows(study, top=5)
    if rows:
        attrs = study.user_attrs["galaxy_synth"]
        calibration = (attrs.get("calibration") or {}).get("name")
        what = {"val_acc": f"validation accuracy after {settings.epochs} epochs",
                "composite": f"composite proxy, calibration {calibration!r}",
                "multi": f"composite proxy, calibration {calibration!r}, Pareto front with parameter count"}[attrs["objective"]]
        print(f"\nbest trials (objective: {what}):")
        print(pd.DataFrame(rows).to_string(index=False))
    print(f"\nwrote {results / 'trials_proxy_metrics.csv'}, {results / 'history.png'}; study stored in {settings.storage_url}")
    return 0


def _synth_progressive(args: argparse.Namespace, settings) -> int:
    import pandas as pd

    from synthesis.progressive import GrowthSettings, parse_widths, run_progressive, summarise, write_growth_report
    from synthesis.study import metrics_table, write_table

    if args.workers > 1:
        raise_usage("--strategy progressive runs in one process (each step depends on the last): drop --workers")
    if args.max_blocks < 1:
        raise_usage("--max-blocks must be >= 1")
    growth = GrowthSettings(widths=parse_widths(args.growth_widths), max_blocks=args.max_blocks)
    study, result = run_progressive(settings, growth, progress=settings.progress)
    results = settings.results_dir
    written = write_growth_report(result, results)
    write_table(metrics_table(study), results / "trials_proxy_metrics.csv")
    print(pd.DataFrame(summarise(result)).to_string(index=False))
    print(f"\nstopped: {result.stop_reason}; best: trial {result.best_trial}")
    print("wrote " + ", ".join(str(p) for p in [*written, results / "trials_proxy_metrics.csv"]))
    return 0


class UsageError(Exception):
    pass


def raise_usage(msg: str) -> None:
    raise UsageError(msg)


def _configure_threads() -> None:
    import torch

    # Intra-op threads = all cores unless the user pinned OMP_NUM_THREADS (parallel workers do).
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(max(1, os.cpu_count() or 1))


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # --workers re-runs this command line
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s: %(message)s")
    import optuna

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    if not args.verbose:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    from synthesis.errors import GalaxySynthError

    try:
        return args.func(args)
    except (GalaxySynthError, UsageError) as exc:
        print(f"galaxy-synth: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("galaxy-synth: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
