"""``galaxy-synth predict``: its command line, the run one request starts (:func:`run_predict`, also what
:func:`galaxy_synth.api.classify` runs) and what it prints (the work is in :mod:`galaxy_synth.predict.catalogue`)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from typing import TYPE_CHECKING

from galaxy_synth.predict.settings import PredictSettings

if TYPE_CHECKING:
    from galaxy_synth.predict.catalogue import CatalogueSummary


def add_predict_parser(sub: argparse._SubParsersAction) -> None:
    pr = sub.add_parser("predict", help="classify images or a whole catalogue with an exported model",
                        description="Classify image files, folders of images, or a catalogue CSV (a 'file' column, or "
                                    "file_<band> for per-band FITS models) with an exported model folder. Images are "
                                    "streamed in chunks through a pool of processes (one per allotted core) or a Dask "
                                    "cluster; rows are written chunk by chunk, so a rerun of the same command resumes "
                                    "where a killed one stopped. Output: the catalogue's id/file (and --keep-columns), "
                                    "status, predicted class, confidence, one calibrated probability per class, and "
                                    "domain_z (how unlike the training images each image is, in training SDs), as "
                                    "CSV, Parquet or FITS (by -o's suffix); with --embeddings, each galaxy's embedding.",
                        epilog="examples:\n  galaxy-synth predict --model results/studies/galaxy-synth/models/rank1 --tta new_images/ -o preds.csv"
                               "\n  galaxy-synth predict --model rank1 --catalogue survey.csv --keep-columns ra,dec -o survey_preds.parquet"
                               "\n  galaxy-synth predict --model rank1 --catalogue survey.csv --keep-columns ra,dec --embeddings -o survey.fits"
                               "\n  galaxy-synth predict --model rank1 --catalogue survey.csv --dask tcp://scheduler:8786 -o preds.csv",
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    pr.add_argument("images", nargs="*", metavar="IMAGE", help="image files and/or folders (searched recursively)")
    pr.add_argument("--model", required=True, metavar="DIR", help="an exported model folder, e.g. results/studies/NAME/models/rank1")
    pr.add_argument("--catalogue", default=None, metavar="CSV",
                    help="a catalogue instead of IMAGEs: a 'file' column (paths relative to the CSV), optional 'id' and "
                         "the model's extra inputs (e.g. z, z_err)")
    pr.add_argument("--keep-columns", default="", metavar="COLS", help="catalogue columns copied into the output, e.g. ra,dec")
    pr.add_argument("--extra", default=None, metavar="CSV",
                    help="for IMAGEs: a CSV of the model's extra inputs with a 'file' or 'id' column; without it a "
                         "model trained with extra inputs gets the training-set means, flagged in the output")
    pr.add_argument("--tta", action="store_true",
                    help="average over 4 rotations × mirror flip (mirror-image classes swapped on flips), calibrated "
                         "with the temperature fitted for the average")
    pr.add_argument("-o", "--out", default="predictions.csv", metavar="OUT",
                    help="output, by its suffix: a .csv; a .parquet folder of one part per chunk (needs pyarrow); or a "
                         ".fits binary table with units, descriptions and the model in its header (needs astropy: the "
                         "fits extra) (default: predictions.csv)")
    pr.add_argument("--embeddings", action="store_true",
                    help="also store each galaxy's embedding (the network's pooled features before its classifier, "
                         "float16): an 'embedding' column in Parquet, OUT.embeddings.npy beside a CSV or FITS (rows in "
                         "the table's order); needs the torch engine")
    pr.add_argument("--target-error", type=float, default=None, metavar="RATE",
                    help="the 'reliable' column: True where the galaxy's predictive entropy is within the threshold "
                         "whose kept validation galaxies had at most this error rate (default: the threshold export "
                         "chose, when the card has one; every output has 'predictive_entropy', an ensemble's also "
                         "'mutual_information', the members' disagreement)")
    pr.add_argument("--chunk-size", type=int, default=1024, metavar="N",
                    help="images per chunk: the unit of work, of memory and of what a kill can lose (default: 1024)")
    pr.add_argument("--workers", type=int, default=None, metavar="N",
                    help="processes (one thread each) or local Dask workers (default: the allotted cores)")
    pr.add_argument("--dask", default=None, metavar="ADDRESS",
                    help="run the chunks on Dask: 'local' starts a local cluster, or an existing scheduler's address "
                         "(e.g. from dask-jobqueue on SLURM); needs the dask extra")
    pr.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"),
                    help="auto: bf16 autocast on a CPU with AMX (the network 1.1-2.3x faster here; probabilities move by <= ~0.02, "
                         "0.1%% of predicted classes change on gz1, BENCHMARKS §20), "
                         "else fp32 (what model.ts computes) (default: auto)")
    pr.add_argument("--engine", default="auto", choices=("auto", "torch", "onnx"),
                    help="auto: ONNX Runtime on the folder's model.onnx for fp32 runs where onnxruntime is installed (the "
                         "small network 1.35x faster than torch on a CPU without AMX, BENCHMARKS §20), else torch "
                         "(default: auto)")
    pr.add_argument("--overwrite", action="store_true", help="replace an output of another run instead of stopping")
    pr.add_argument("--threshold", type=float, default=None, metavar="P",
                    help="also print how many galaxies each class has with probability >= P")
    pr.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    pr.set_defaults(func=cmd_predict)


def run_predict(settings: PredictSettings) -> CatalogueSummary:
    """One run: the folder's card read alone (the weights, and torch, load while decoding starts), the rows, the
    engine and precision chosen for them, then the catalogue streamed through the model."""
    # imported here: the command line's parser loads this module, and ``--help`` needs none of them
    from galaxy_synth.predict.catalogue import classify_catalogue, inference_settings
    from galaxy_synth.predict.catalogue_rows import rows_from_catalogue, rows_from_files
    from galaxy_synth.predict.embeddings import embedding_engine
    from galaxy_synth.predict.model_folder import read_model_folder
    from galaxy_synth.predict.output_formats import output_format

    output_format(settings.out)  # one line before any work: an unknown suffix, or embeddings the engine cannot give
    if settings.embeddings:
        settings = replace(settings, engine=embedding_engine(settings.engine))
    model = read_model_folder(settings.model)
    rows = (rows_from_catalogue(model, settings.catalogue, settings.keep_columns) if settings.catalogue
            else rows_from_files(model, settings.images, settings.extra_csv))
    precision, engine = inference_settings(model, settings.precision, settings.engine)
    return classify_catalogue(model, rows, replace(settings, precision=precision, engine=engine))


def cmd_predict(args: argparse.Namespace) -> int:
    from galaxy_common import DataError

    settings = PredictSettings.of(args)
    if bool(settings.images) == bool(settings.catalogue):
        raise DataError("give IMAGEs (files or folders) or --catalogue CSV, one of the two")
    if args.threshold is not None and not 0 < args.threshold <= 1:
        raise DataError("--threshold must be a probability in (0, 1]")
    summary = run_predict(settings)
    if summary.extras_note:
        print(f"galaxy-synth: note: no --extra given: {', '.join(summary.extra_names)} set to the training-set means "
              f"for every image (column extra_inputs)", file=sys.stderr)
    if summary.domain_warning:
        print(f"galaxy-synth: warning: {summary.domain_warning}", file=sys.stderr)
    if summary.resumed_chunks and not summary.written_now:
        print(f"{summary.out} is already complete ({summary.rows} rows); nothing to do (--overwrite redoes it)")
        return 0
    resumed = f" (resumed after {summary.resumed_chunks} chunk(s) written before)" if summary.resumed_chunks else ""
    counts = ", ".join(f"{k} {v}" for k, v in sorted(summary.counts.items(), key=lambda kv: -kv[1]))
    failed = f"; {summary.failed} unreadable (status column)" if summary.failed else ""
    print(f"{summary.written_now} image(s){' with TTA' if settings.tta else ''}{resumed}: {counts}{failed}; wrote {summary.out}")
    if args.threshold is not None:
        from galaxy_synth import api

        table = api.read_predictions(summary.out)
        probs = table.filter(like="p_")
        print(f"p >= {args.threshold:g}: " + ", ".join(f"{c[2:]} {int((probs[c] >= args.threshold).sum())}" for c in probs.columns))
    return 0
