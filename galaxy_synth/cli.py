"""``galaxy-synth``: the command line that wires ``synthesis``, ``proxies`` and ``correlation``.

Sub-commands:
  synth   run or resume an architecture-synthesis study (Optuna, SQLite by default)
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
  galaxy-synth synth --storage postgresql+psycopg://user:pw@host/db --study gz1

data layouts accepted by --data:
  FOLDER/labels.csv     columns: 'file' (or 'id' + image extension), 'label_name'/'class' or integer
                        'label'; optional numeric extra inputs 'z', 'z_err' (or --extra-columns)
  FOLDER/<class>/*.jpg  an ImageFolder tree
  FILE.h5               Galaxy10 HDF5 as astroNN distributes it ('images', 'ans', optional 'redshift')

resume: run the same command again. --trials N counts COMPLETED trials across all runs; a trial
interrupted by a crash is re-queued (heartbeat) and the data split is read back from the study.
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
                   help="output folder: study.db, cache/, trials.csv, plots (default: ./results)")
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
    t.add_argument("--max-params", type=int, default=5_000_000,
                   help="prune architectures with more parameters before training (default: 5000000)")
    t.add_argument("--pruner", choices=("auto", "median", "none"), default="auto",
                   help="auto = median pruning when --epochs >= 4, none for 2-epoch trials (default: auto)")
    t.add_argument("--heartbeat-interval", type=int, default=10,
                   help="seconds between trial heartbeats; a trial silent for 3× this is re-queued (default: 10)")
    t.add_argument("--no-progress", action="store_true", help="no progress bars (e.g. for log files)")
    p.set_defaults(func=cmd_synth)
    return parser


def cmd_synth(args: argparse.Namespace) -> int:
    import pandas as pd

    from synthesis.study import StudySettings, export_trials_table, plot_history, run_study, summary_rows

    settings = StudySettings(
        data=args.data, size=args.size, crop=args.crop, merge=args.merge, drop=args.drop,
        extra_columns=[c.strip() for c in args.extra_columns.split(",") if c.strip()] if args.extra_columns else None,
        max_samples=args.max_samples, val_subset=args.val_subset, seed=args.seed, epochs=args.epochs,
        trials=args.trials, storage=args.storage, study=args.study, device=args.device, results=args.results,
        max_params=args.max_params, pruner=args.pruner, synthetic_n=args.synthetic_n,
        heartbeat_interval=args.heartbeat_interval, progress=not args.no_progress,
    )
    if args.trials < 1 or args.epochs < 1:
        raise_usage("--trials and --epochs must be >= 1")
    _configure_threads()

    def announce(study) -> None:
        done = sum(1 for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE")
        print(f"study {settings.study!r} in {settings.storage_url}: {done} completed trial(s), target {settings.trials}",
              file=sys.stderr)

    study = run_study(settings, on_ready=announce)
    results = settings.results_dir
    results.mkdir(parents=True, exist_ok=True)
    export_trials_table(study, results / "trials.csv")
    plot_history(study, results / "history.png")
    rows = summary_rows(study, top=5)
    if rows:
        print("\nbest trials (objective = validation accuracy after", settings.epochs, "epochs):")
        print(pd.DataFrame(rows).to_string(index=False))
    print(f"\nwrote {results / 'trials.csv'}, {results / 'history.png'}; study stored in {settings.storage_url}")
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
