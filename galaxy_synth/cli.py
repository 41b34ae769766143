"""``galaxy-synth``: the command line over :mod:`galaxy_synth.api`.

Sub-commands:
  synth       run or resume an architecture-synthesis study (Optuna, SQLite by default)
  rank        rank a study's trials by the current proxy calibration, with every metric
  correlate   fit the composite proxy on a metrics table and report its cross-validated ranking
  export      fully train and package the study's top models (TorchScript, ONNX, model cards)
  predict     classify images with an exported model folder
  report      a static HTML report of a study (history, importances, calibration, top models)

The options of ``synth`` are generated from :class:`synthesis.settings.StudySettings` (one
declaration per option); the options every study command shares come from one parent parser.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Sequence

from galaxy_synth.console import print_best, print_correlation, print_front
from galaxy_synth.predict import add_predict_parser

EPILOG_SYNTH = """\
examples:
  galaxy-synth synth                                  # embedded procedural galaxies (CPU: a few minutes)
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
workers (the study stops at exactly N); a trial interrupted by a crash or Ctrl-C is re-queued and
the data split is read back from the study. Options left out on a resume take the study's values.
"""


def _study_parent() -> argparse.ArgumentParser:
    """Options every command that works on an existing study shares (--storage and --results as synth declares them)."""
    from synthesis import add_arguments

    p = argparse.ArgumentParser(add_help=False)
    add_arguments(p, only=("storage", "results"))
    p.add_argument("--study", default=None,  # unlike synth's --study (which names a new one), this picks an existing one
                   help="study name (default: the only study in the storage, else the most recently active one; "
                        "it says which)")
    return p


def _progress_parent() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--no-progress", action="store_true", help="no progress bars (e.g. for log files)")
    return p


def _device_parent() -> argparse.ArgumentParser:
    from synthesis import add_arguments

    p = argparse.ArgumentParser(add_help=False)
    add_arguments(p, only=("device",))
    return p


def _build_parser() -> argparse.ArgumentParser:
    from synthesis import RankBy, names
    from synthesis import add_arguments

    RANK_BY = names(RankBy)
    parser = argparse.ArgumentParser(
        prog="galaxy-synth",
        description="Find good CNN architectures for galaxy-morphology classification with short, "
                    "scored training trials in a resumable Optuna study.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log Optuna's per-trial messages too")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    study, progress, device = _study_parent(), _progress_parent(), _device_parent()

    p = sub.add_parser("synth", help="run or resume an architecture-synthesis study", parents=[progress],
                       description="Run or resume an Optuna study of galaxy CNNs: each trial samples an "
                                   "architecture and optimiser, trains it for --epochs on a bounded subset, "
                                   "and is scored on a fixed validation subset. Prints what it chose for the "
                                   "hardware (image size, FLOP cap, trials, precision) before it starts.",
                       epilog=EPILOG_SYNTH, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    p.add_argument("--worker-id", type=int, default=None, help=argparse.SUPPRESS)  # set by --workers for its children
    p.set_defaults(func=cmd_synth)

    r = sub.add_parser("rank", help="rank a study's trials by the current proxy calibration", parents=[study],
                       description="Rescore every completed trial from its stored raw metrics with the current "
                                   "calibration (the values the sampler saw are not touched), print the best and write "
                                   "trials_proxy_metrics.csv with every metric into the study's folder.")
    r.add_argument("--calibration", default=None, metavar="FILE",
                   help="proxy calibration JSON (default: RESULTS/proxy_weights.json, else the shipped default)")
    r.add_argument("--top", type=int, default=10, help="rows to print (default: 10)")
    r.add_argument("--by", choices=RANK_BY, default="objective",
                   help="what ranks the trials: the study's objective (the proxy for a composite study), the current "
                        "calibration's proxy, validation accuracy or balanced accuracy (default: objective)")
    r.set_defaults(func=cmd_rank)

    c = sub.add_parser("correlate", help="calibrate the composite proxy against full training and report its ranking",
                       parents=[study, device, progress],
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
                                   "proxy_weights.json (fitted on all rows) and PNG plots into the study's folder. "
                                   "The refit becomes RESULTS/proxy_weights.json (what new studies start with) only "
                                   "if it ranks better than the calibration the study ran with.",
                       epilog="examples:\n  galaxy-synth correlate --ground-truth 24 --full-epochs 30\n"
                              "  galaxy-synth correlate --table ../shared/benchmarks/nb201_zc_cifar10.csv --target val_accuracy",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    c.add_argument("--table", default=None, metavar="CSV", help="table mode: CSV with one row per architecture, metric columns and the target")
    c.add_argument("--tables", nargs="+", default=None, metavar="CSV",
                   help="pooled mode: ground-truth CSVs that correlate exported (e.g. bench/ground_truth/*.csv); fits on "
                        "all their rows (mean of the first --seeds seeds), cross-validated by study")
    c.add_argument("--save-ground-truth", default=None, metavar="CSV",
                   help="study mode: also merge every full-training result of the study into this CSV (e.g. one kept "
                        "in version control; the study folder always gets ground_truth_rows.csv)")
    c.add_argument("--target", default="accuracy",
                   help="target column; in study mode accuracy, balanced_accuracy or macro_f1 (default: accuracy; "
                        "the report shows all three)")
    c.add_argument("--features", default=None, metavar="COLS",
                   help="table mode: comma-separated metric columns (default: every numeric, non-constant column but the target)")
    c.add_argument("--ground-truth", type=int, default=24, metavar="K", help="study mode: architectures to fully train (default: 24, at least 6)")
    c.add_argument("--top", type=int, default=3, help="study mode: of those, the current best by proxy score (default: 3)")
    c.add_argument("--full-epochs", type=int, default=30, help="study mode: epochs of full training (default: 30)")
    c.add_argument("--folds", type=int, default=5, help="K of repeated K-fold (default: 5; leave-one-out below 2K rows)")
    c.add_argument("--repeats", type=int, default=10, help="repeats of K-fold with fresh shuffles (default: 10)")
    c.add_argument("--seed", type=int, default=0, help="seed of full training, fold shuffles and bootstrap (default: 0)")
    c.add_argument("--seeds", type=int, default=1, metavar="N",
                   help="study mode: full-train each architecture with N seeds (SEED, SEED+1, ...) and fit on the mean; "
                        "one seed's ranking is itself noisy (default: 1)")
    c.set_defaults(func=cmd_correlate)

    e = sub.add_parser("export", help="fully train and package the study's top models", parents=[study, device, progress],
                       description="Rank the study's completed trials with the current calibration, take the top "
                                   "--top, reuse the full-trained weights 'galaxy-synth correlate' stored for them (same "
                                   "--full-epochs and --seed) or train them now with the same loop, and write "
                                   "models/rank{1..N}/ (model.pt state dict, arch.json, model.ts TorchScript, "
                                   "model.onnx when onnx is installed, card.json, card.md) and top{N}_models.json "
                                   "into the study's folder; with --ensemble, models/ensemble/ too.",
                       epilog="example:\n  galaxy-synth export --top 3 --full-epochs 30\n  galaxy-synth export --ensemble 5",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    e.add_argument("--top", type=int, default=3, help="how many models (default: 3)")
    e.add_argument("--full-epochs", type=int, default=30, help="epochs of full training (default: 30, as correlate)")
    e.add_argument("--calibration", default=None, metavar="FILE",
                   help="proxy calibration for the ranking (default: RESULTS/proxy_weights.json, else the shipped default)")
    e.add_argument("--seed", type=int, default=0, help="seed of full training (default: 0, as correlate)")
    e.add_argument("--by", choices=RANK_BY, default="objective",
                   help="what picks the top models: the study's objective (the proxy for a composite study), the "
                        "current calibration's proxy, validation accuracy or balanced accuracy — for an imbalanced "
                        "catalogue (gz1: 70%% ellipticals) balanced accuracy repeats across seeds better (default: objective)")
    e.add_argument("--knee", action="store_true",
                   help="also package the knee of the accuracy-against-FLOPs front (the cheapest trial within one "
                        "binomial SE of the best score) as models/knee/, when it is not already in the top")
    e.add_argument("--ensemble", type=int, nargs="?", const=5, default=0, metavar="K",
                   help="also write models/ensemble/: greedy ensemble selection (Caruana et al. 2004) on validation "
                        "log-loss from the top K fully trained trials (K default: 5), one TorchScript/ONNX model "
                        "averaging the members' calibrated probabilities, with uncertainty for predict")
    e.add_argument("--ensemble-members", type=int, default=5, metavar="M",
                   help="greedy selection's picks at most, with replacement (default: 5)")
    e.add_argument("--target-error", type=float, default=0.05, metavar="RATE",
                   help="each model's reliability flag (predict's 'reliable' column): the entropy threshold whose kept validation galaxies have "
                        "at most this error rate (default: 0.05; predict --target-error changes it)")
    e.set_defaults(func=cmd_export)

    add_predict_parser(sub)

    rp = sub.add_parser("report", help="write a static HTML report of a study", parents=[study],
                        description="Write report/index.html into the study's folder (open it in any browser; no "
                                    "server): data and class balance, optimisation history, the best trials, parameter "
                                    "importances, the proxy's cross-validated calibration (after correlate) and the "
                                    "exported top models with their confusion matrices (after export).")
    rp.set_defaults(func=cmd_report)
    return parser


def cmd_rank(args: argparse.Namespace) -> int:
    import pandas as pd

    from galaxy_common import write_table
    from galaxy_synth import api
    from proxies import MissingMetricError
    from synthesis import GalaxySynthError
    from synthesis import study_dir

    results = Path(args.results)
    try:
        df = api.rank(args.study, results, args.storage, args.calibration, by=args.by)
    except MissingMetricError as exc:
        raise GalaxySynthError(f"{exc}; the study's trials lack it (made by an older galaxy-synth?)") from None
    name = df.attrs["study"]
    out = write_table(df, study_dir(results, name) / "trials_proxy_metrics.csv")
    done = df[df["finished"]]
    cols = ["trial", "rank_score", "rung_reached", "proxy_score", "objective", "val_acc", "val_balanced_acc", "train_loss",
            "grad_norm_mean", "zc_synflow", "zc_naswot", "params_count", "flops",
            "predicted_ms_per_image", "predicted_ms_per_image_at_batch", "collapsed"]
    print(f"{len(done)} finished trials of study {name!r}, ranked by {done['ranked_by'].iloc[0] if len(done) else '-'} "
          f"(proxy = calibration {df.attrs['calibration']!r}, {df.attrs['calibration_hash']}, from "
          f"{df.attrs['calibration_file']}):")
    if df.attrs.get("scorer"):  # --strategy calibrating: what scored its trials during the search
        print(df.attrs["scorer"])
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.float_format", "{:.4g}".format):
        shown = [c for c in cols if c in done.columns and (done[c].notna().any() or not c.startswith("predicted"))]
        print(done[shown].head(args.top).to_string(index=False))
        print_front(df)
    print(f"\nwrote {out} (every trial, every metric)")
    return 0


def cmd_correlate(args: argparse.Namespace) -> int:
    from galaxy_synth import api

    results = Path(args.results)
    if args.tables:
        report, written = api.calibrate_pooled(args.tables, args.target, results, seeds=args.seeds, folds=args.folds,
                                               repeats=args.repeats, seed=args.seed, progress=not args.no_progress)
    elif args.table is None:
        _configure_threads()
        report, written = api.calibrate(args.study, results, args.storage, ground_truth=args.ground_truth, top=args.top,
                                        full_epochs=args.full_epochs, target=args.target, seeds=args.seeds,
                                        seed=args.seed, device=args.device, folds=args.folds, repeats=args.repeats,
                                        progress=not args.no_progress, save_ground_truth=args.save_ground_truth)
    else:
        features = [f.strip() for f in args.features.split(",")] if args.features else None
        report, written = api.calibrate_table(args.table, args.target, results, features, args.folds, args.repeats, args.seed)
    print_correlation(report, args.target)
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from galaxy_synth import api

    _configure_threads()
    exported = api.export(args.study, args.results, args.storage, top=args.top, full_epochs=args.full_epochs,
                          seed=args.seed, device=args.device, calibration=args.calibration, progress=not args.no_progress,
                          by=args.by, knee=args.knee, ensemble=args.ensemble, ensemble_members=args.ensemble_members,
                          target_error=args.target_error)
    for e in exported:
        if e.card["rank"] == "ensemble":
            t = e.card["test"]
            print(f"ensemble: trials {e.card['trial']}  test acc {t['accuracy']:.3f}  balanced {t['balanced_accuracy']:.3f}  "
                  f"log-loss {t['log_loss']:.3f}  ECE {t['ece']:.3f}  → {e.folder}")
            continue
        t = e.card["test"]
        print(f"{'knee' if e.card.get('knee') and e.rank > args.top else f'rank {e.rank}'}: trial {e.trial} {e.card['architecture']}  test acc {t['accuracy']:.3f}  "
              f"balanced {t['balanced_accuracy']:.3f}  macro-F1 {t['macro_f1']:.3f}  "
              f"{e.card['cpu_latency']['median_ms']:.2f} ms/img  → {e.folder}")
    if exported:
        print(f"wrote {exported[0].folder.parent.parent / f'top{args.top}_models.json'}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from galaxy_synth import api

    page = api.report(args.study, args.results, args.storage)
    print(f"wrote {page} (open it in a browser)")
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from synthesis import from_args
    from synthesis import check_ranges

    settings = from_args(args)
    child = args.worker_id is not None
    if child:
        settings = settings.replace(worker_id=args.worker_id, workers=1)
    elif _array_task() is not None:  # a task of a cluster job array: its own sampler seed, like a worker's
        settings = settings.replace(worker_id=_array_task())
    if settings.strategy == "progressive" and (settings.workers or 1) > 1:
        raise UsageError("--strategy progressive runs in one process (each step depends on the last): drop --workers")
    check_ranges(settings)  # before torch, optuna or the data are loaded: a typo costs no wait
    import pandas as pd

    from galaxy_synth import api
    from synthesis.search import summary_rows
    from synthesis.search import masked

    def announce(opened) -> None:
        from synthesis.hardware import allotted_cores
        from synthesis.search import finished_count

        s = opened.settings
        done = finished_count(opened.study)
        target = "growth until it stops improving" if s.strategy == "progressive" else f"target {s.trials}"
        extend = "" if done < s.trials or s.strategy == "progressive" else \
            f" (already reached: --trials {s.trials + 20} extends it)"
        print(f"study {s.study_name!r} in {masked(s.storage_url)}: {done} completed trial(s), {target}{extend}", file=sys.stderr)
        if not child:
            print(f"{s.describe_defaults(opened.device.type)} ({opened.precision_reason}); {allotted_cores().describe()}: "
                  f"{opened.execution.describe()}; objective {s.objective}", file=sys.stderr)
            if opened.objective_note:
                print(f"galaxy-synth: {opened.objective_note}", file=sys.stderr)

    result = api.synth(settings, on_ready=announce)
    if settings.strategy == "progressive":
        from synthesis.search import summarise

        print(pd.DataFrame(summarise(result.growth)).to_string(index=False))
        print(f"\nstopped: {result.growth.stop_reason}; best: trial {result.growth.best_trial}")
        print("wrote " + ", ".join(str(p) for p in result.written))
        return 0
    if child:
        return 0  # the parent writes the tables and plots once all workers are done
    print_best(result.study, result.settings, summary_rows(result.study, top=5))
    print("\nwrote " + ", ".join(str(p) for p in result.written) + f"; study stored in {masked(result.settings.storage_url)}")
    return 0


def _array_task() -> int | None:
    """The task number a cluster scheduler gave this process (SLURM job arrays and srun tasks), if any."""
    for name in ("SLURM_ARRAY_TASK_ID", "SLURM_PROCID"):
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    return None


class UsageError(Exception):
    pass


def _configure_threads() -> None:
    from synthesis.hardware import allotted_cores, set_torch_threads

    set_torch_threads(allotted_cores().cores)  # the cores this process may use, not the machine's


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s: %(message)s")
    import optuna

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    if not args.verbose:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    from synthesis import GalaxySynthError

    try:
        return args.func(args)
    except (GalaxySynthError, UsageError) as exc:
        print(f"galaxy-synth: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        what = {"synth": "the trial in progress is re-queued", "correlate": "every model trained so far is stored",
                "export": "every model trained so far is stored"}.get(args.command)
        print(f"galaxy-synth: interrupted; {what + ': ' if what else ''}run the same command again to "
              f"{'resume' if what else 'start over'}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
