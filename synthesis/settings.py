"""The one typed settings object of a study: what the CLI parses, what the study freezes, what a resume reads back.

Every option of ``galaxy-synth synth`` is a field of :class:`StudySettings`, declared once
(:func:`synthesis.declarations.setting`) with its default, help text, whether a study *freezes* it
(a resumed or parallel run must use the same value, or it would mix incomparable trials) and its
rule: choices, range, parse, hardware-dependent default. The command line is generated from these
declarations (:func:`synthesis.command_line.add_arguments`), :func:`check_ranges` enforces every
rule, the study stores :meth:`StudySettings.frozen` in its attributes, and
:meth:`StudySettings.from_attrs` rebuilds the settings of an existing study. Adding a frozen setting
is one field here plus the code that uses it. Each stage reads its own part, derived once from these
(``DataSettings.of``, ``TrialSettings.of``, ``SearchSettings.of``, ``GrowthSettings.of``…).

Settings whose best value depends on the hardware (image size, FLOP cap, trial count) default to
``None`` = "auto" (declared ``auto=``): :meth:`StudySettings.resolve` fills them from the device for
a new study and from the stored study for a resumed one, and
:meth:`StudySettings.describe_defaults` says what was chosen.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synthesis.choices import (
    BandMapping,
    Block,
    Cost,
    Equivariance,
    Loss,
    Objective,
    Precision,
    Pruner,
    Sampler,
    Schedule,
    Strategy,
    names,
)
from synthesis.declarations import (
    at_least,
    auto_default,
    between,
    half_open,
    problems,
    setting,
)
from synthesis.errors import GalaxySynthError
from synthesis.locations import dataset_name, default_storage_url, default_study_name, study_dir
from synthesis.settings_rules import BETWEEN_FIELDS, check_schema_file, parse_fidelities

OBJECTIVES, SAMPLERS, PRUNERS, STRATEGIES = names(Objective), names(Sampler), names(Pruner), names(Strategy)
LOSSES, PRECISIONS, SCHEDULES, BAND_MAPPINGS = names(Loss), names(Precision), names(Schedule), names(BandMapping)
EQUIVARIANCES, BLOCKS, COSTS = names(Equivariance), names(Block), names(Cost)

MIN_IMAGE_SIZE = 8  # 2-4 downsampling stages need at least this many pixels



STORAGE_ENV = "GALAXY_SYNTH_STORAGE"  # the storage URL, for workers and for users who keep passwords off `ps`


STUDY_ATTR = "galaxy_synth"  # the Optuna study user attr that holds a study's frozen experiment


SUBSET_PROBLEM = "--max-samples and --val-subset must be >= 2"  # one message for the two subsets


@dataclass
class StudySettings:
    """All options of ``galaxy-synth synth``; ``galaxy-synth synth --help`` prints each one's help."""

    # "auto" (``auto=``): measured CPU defaults keep a first study to a few minutes on 2 cores (docs/BENCHMARKS.md
    # §12); a GPU keeps the larger images and the uncapped space.
    # -- data ---------------------------------------------------------------------------------
    data: str | None = setting(None, group="data", frozen=True, metavar="PATH",
                               help="dataset folder or .h5 file (default: the embedded procedural galaxy set)")
    size: int | None = setting(None, group="data", frozen=True, auto={"cpu": 32, "gpu": 64}, bounds=at_least(MIN_IMAGE_SIZE),
                               problem="{flag} {value} is too small (need >= {low})",
                               help="image side in pixels after resizing (default: 32 on a CPU, 64 on a GPU)")
    crop: float | None = setting(None, group="data", frozen=True, bounds=between(0.05, 1.0),
                                 help="centre-crop fraction of each side before resizing (default: 0.5 for image folders, "
                                      "where SDSS galaxies are small in the frame; 1.0 for HDF5 and the embedded set)")
    merge: list[str] = setting(group="data", frozen=True, metavar="A,B=NEW", factory=list,
                               help="merge classes, e.g. spiral_cw,spiral_acw=spiral (repeatable)")
    drop: list[str] = setting(group="data", frozen=True, metavar="CLASS", factory=list,
                              help="drop a class, e.g. dont_know (repeatable or comma-separated)")
    extra_columns: list[str] | None = setting(None, group="data", metavar="COLS",
                                              help="comma-separated numeric labels.csv columns fed to the network "
                                                   "(default: whichever of z, z_err, redshift, redshift_err exist)")
    bands: str | None = setting(None, group="data", frozen=True, metavar="B,B,...",
                                help="FITS: which bands — plane indices of a band cube (e.g. 0,1,2), or the band names of "
                                     "per-band file columns file_g, file_r, … (e.g. g,r,z); default: all")
    hdu: str | None = setting(None, group="data", frozen=True, metavar="HDU",
                              help="FITS: the HDU to read, by index or name (default: the first with 2-D or 3-D data)")
    band_mapping: str = setting("asinh", group="data", frozen=True, choices=BAND_MAPPINGS, legacy="asinh",
                                help="FITS: the per-band intensity map fitted on training pixels — asinh (sky-subtracted, "
                                     "noise-scaled asinh stretch) or robust (linear, median and MAD: for fluxes already "
                                     "stretched; on raw fluxes it trained to chance, BENCHMARKS §19) (default: asinh)")
    soft_labels: str | None = setting(None, group="data", frozen=True, metavar="COLS",
                                      help="labels.csv columns of per-class vote fractions or counts (Galaxy Zoo), one "
                                           "per class in class order, e.g. p_el,p_cw,p_acw,p_edge,p_dk,p_mg: trained as "
                                           "soft targets; the plurality class is the label for accuracy and the split")
    schema: str | None = setting(None, group="data", frozen=True, metavar="FILE", parse=check_schema_file,
                                 help="a TOML file of Galaxy Zoo questions, answers and vote columns (README: Vote "
                                      "schemas): trained on the vote counts, one Dirichlet per question")
    keep_columns: list[str] | None = setting(None, group="data", metavar="COLS",
                                             help="labels.csv columns carried with every galaxy (e.g. ra,dec) into "
                                                  "test-set predictions of exported models; the id column always is")
    max_samples: int = setting(2000, group="data", frozen=True, bounds=at_least(2), problem=SUBSET_PROBLEM,
                               help="training images per trial, a stratified subset of the train split (default: 2000)")
    val_subset: int = setting(500, group="data", frozen=True, bounds=at_least(2), problem=SUBSET_PROBLEM,
                              help="validation images per trial, a fixed stratified subset (default: 500)")
    synthetic_n: int = setting(3000, group="data", frozen=True,
                               help="number of generated galaxies when no --data is given (default: 3000)")
    # -- study --------------------------------------------------------------------------------
    study: str | None = setting(None, group="study",
                                help="study name inside the storage (default: named after the data: 'galaxy-synth' for the "
                                     "embedded set, else the data folder's name)")
    storage: str | None = setting(None, group="study", metavar="URL",
                                  help="Optuna storage URL (default: $GALAXY_SYNTH_STORAGE, else sqlite:///RESULTS/study.db): "
                                       "postgresql+psycopg://user@host/db to share a study between machines, or "
                                       "journal:PATH for a journal file on a shared filesystem (a cluster without a "
                                       "database server); a URL with a password is best given by $GALAXY_SYNTH_STORAGE, "
                                       "which ps does not show")
    results: str = setting("results", group="study", metavar="DIR",
                           help="output folder: study.db, cache/, and one folder of tables and plots per study (default: ./results)")
    seed: int = setting(0, group="study", frozen=True, help="seed for the split, the sampler and each trial's init (default: 0)")
    search_seed: int | None = setting(None, group="study",
                                      help="another seed for the search alone (the sampler; progressive growth's "
                                           "initialisations), keeping the split of --seed: repeat a search on the same "
                                           "data (default: --seed)")
    device: str = setting("auto", group="study", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:1, mps")
    workers: int | None = setting(None, group="study", bounds=at_least(1),
                                  help="parallel worker processes on this machine, sharing the study's storage, the "
                                       "allotted cores split between them; logs in the study's workers/ folder "
                                       "(default: on a CPU one single-threaded process per allotted core, the faster "
                                       "plan measured in docs/BENCHMARKS.md §17; on a GPU 2 per device). To use several "
                                       "machines, run the same command on each with one shared --storage")
    # -- trials -------------------------------------------------------------------------------
    trials: int | None = setting(None, bounds=at_least(1), auto={"cpu": 20, "gpu": 20},
                                 help="target number of COMPLETED trials in the study (default: 20)")
    epochs: int = setting(2, frozen=True, bounds=at_least(1), help="training epochs per trial (default: 2)")
    loss: str = setting("ce", frozen=True, choices=LOSSES,
                        help="training loss for trials and, through each trial's stored settings, full training: "
                             "cross-entropy, class-weighted (inverse frequency) cross-entropy, or focal (γ=2, class-"
                             "weighted) for imbalanced sets such as gz1 (70%% ellipticals). Measured on gz1 "
                             "(docs/BENCHMARKS.md §7): ce gives the best accuracy, weighted_ce/focal ≈16 points more "
                             "balanced accuracy for ≈12 less accuracy (default: ce)")
    label_smoothing: float = setting(0.0, frozen=True, bounds=half_open(0.0, 1.0), help="label smoothing for ce / weighted_ce (default: 0)")
    precision: str = setting("auto", frozen=True, choices=PRECISIONS, legacy="fp32",
                             help="auto: bf16 autocast on a CUDA GPU with bf16 (fp16 + gradient scaling without), bf16 on "
                                  "a CPU with bf16 instructions where it measures faster, else fp32 (default: auto; "
                                  "the choice is stored with the study)")
    schedule: str = setting("constant", frozen=True, choices=SCHEDULES, legacy="constant",
                            help="learning-rate schedule inside each trial: constant, or cosine / linear decaying to zero "
                                 "within the trial's own epochs (default: constant)")
    warmup: float = setting(0.0, frozen=True, legacy=0.0, bounds=half_open(0.0, 1.0),
                            problem="{flag} {value} must be a fraction in [{low}, {high})",
                            help="fraction of each trial's steps with a linear learning-rate warm-up (default: 0)")
    fidelities: str | None = setting(None, frozen=True, legacy=None, metavar="E,E,...", parse=parse_fidelities,
                                     help="promotion by asynchronous successive halving (Optuna's SuccessiveHalvingPruner): "
                                          "every trial trains the first budget (--epochs), the best 1/η by the objective "
                                          "go on to the next, and so on, e.g. 2,6,18 (η = 3); above the first budget "
                                          "trials are scored by validation accuracy (balanced accuracy with --objective "
                                          "balanced_acc). --trials then counts trials that finished their last budget or "
                                          "were stopped at a rung (default: off, every trial gets --epochs)")
    max_params: int = setting(5_000_000, help="prune architectures with more parameters before training (default: 5000000)")
    max_mflops: float | None = setting(None, frozen=True, auto={"cpu": 40.0, "gpu": 0.0}, bounds=at_least(0.0),
                                       problem="{flag} must be >= {low} (0 = no cap)",
                                       help="prune architectures above this many forward MFLOPs per image before training; "
                                            "0 = no cap (default: 40 on a CPU, no cap on a GPU)")
    # "auto": a resume keeps the study's own cost; a new study gets flops until the time model is checked
    cost: str | None = setting(None, frozen=True, choices=COSTS, auto={"cpu": "flops", "gpu": "flops"}, legacy="flops",
                               help="the cost axis of the front, its knee (export --knee), rank's table and --objective multi: "
                                    "time = predicted ms per image of a catalogue batch on one CPU thread, from operators timed "
                                    "once per machine (recorded on every trial only then); flops = forward FLOPs (default: flops, until the time model's check against measured networks is in docs/BENCHMARKS.md)")
    max_ms: float | None = setting(None, frozen=True, legacy=None, bounds=at_least(0.0), problem="{flag} must be >= {low} (0 = no cap)",
                                   help="shrink architectures above this predicted time per image (ms, a batch of 256 on one "
                                        "CPU thread, --cost time's measure) before training, as --max-mflops does; 0 = no cap (default: none)")
    equivariant: str = setting("off", frozen=True, choices=EQUIVARIANCES, legacy="off",
                               help="group-equivariant networks in the search space, beside plain/residual/inverted: "
                                    "off; rotations = also c4 blocks (group convolutions over quarter turns, invariant to "
                                    "them after group pooling); auto = c4, and d4 (quarter turns and mirror flips) where "
                                    "the data have no mirror-image classes such as spiral_cw/spiral_acw: a d4 network "
                                    "cannot tell a spiral from its mirror image (default: off)")
    pruner: str = setting("auto", choices=PRUNERS,
                          help="auto = median pruning when --epochs >= 4, none for 2-epoch trials (default: auto)")
    objective: str | None = setting(None, frozen=True, choices=OBJECTIVES,
                                    help="what the sampler maximises: composite = the calibrated proxy's predicted "
                                         "full-training accuracy (default for --strategy tpe where the calibration covers "
                                         "the trial settings, else train_acc, and it says so); val_acc / balanced_acc = "
                                         "validation accuracy / balanced accuracy after --epochs (progressive growth uses "
                                         "val_acc unless given balanced_acc); train_acc = the trial's final-epoch training "
                                         "accuracy, the strongest uncalibrated signal measured; multi = composite and, as a "
                                         "second objective to minimise, the predicted time (--cost time) or the parameter "
                                         "count (--cost flops) (Pareto front, no pruning); val_fraction_mae = the mean "
                                         "validation vote-fraction error over questions, minimised (--schema or "
                                         "--soft-labels)")
    calibration: str | None = setting(None, metavar="FILE",
                                      help="proxy calibration JSON for a NEW study (default: RESULTS/proxy_weights.json if "
                                           "'galaxy-synth correlate' promoted one, else the shipped default); a resumed "
                                           "study keeps its own")
    heartbeat_interval: int = setting(10, help="seconds between trial heartbeats; a trial silent for 3× this is re-queued (default: 10)")
    sampler: str = setting("tpe", choices=SAMPLERS,
                           help="how trials choose architectures: tpe (Optuna's TPE, constant liar for parallel workers) or "
                                "random (the baseline to compare against) (default: tpe)")
    strategy: str = setting("tpe", frozen=True, choices=STRATEGIES,
                            help="tpe: each trial samples a whole architecture (default). progressive: grow one network "
                                 "block by block, each child inheriting its parent's trained weights (+3%% jitter), one "
                                 "epoch per child, keep the best, stop when validation accuracy stops improving; ignores "
                                 "--trials, writes growth_report.json and growth.png. calibrating: tpe with promotion "
                                 "(--fidelities, default E,3E,9E) whose scorer the study refits on its own promoted "
                                 "trials, each rung by its own signals, and TPE and promotion see every trial "
                                 "rescored by the current version (experimental)")
    growth_widths: str = setting("16,32,64", metavar="W,W,...", help="progressive: widths tried for each new block; the "
                                 "seed network is one block of the smallest (default: 16,32,64)")
    growth_block: str = setting("plain", choices=BLOCKS,
                                help="progressive: the grown network's block type: plain, residual, inverted, or the "
                                     "equivariant c4 / d4 (--growth-widths then count channels, multiples of 4 / 8; d4 "
                                     "is refused where the data have mirror-image classes) (default: plain)")
    max_blocks: int = setting(8, bounds=at_least(1), help="progressive: largest network, in blocks (default: 8)")
    growth_patience: int = setting(2, bounds=at_least(1), help="progressive: steps in a row without a better network before growth stops, "
                                           "counted once a grown network beats the one-block seed (default: 2)")
    # -- process (not options a study remembers) ----------------------------------------------
    progress: bool = setting(True, group="process", cli=False, help="progress bars")
    worker_id: int = setting(0, group="process", cli=False, help="which of several parallel workers this process is")
    poll_seconds: float = setting(0.5, group="process", cli=False, help="how often an idle worker polls the study")
    grace_period: int | None = setting(None, group="process", cli=False, help="heartbeat grace period (default 3× interval)")

    # -- derived ------------------------------------------------------------------------------
    @property
    def results_dir(self) -> Path:
        return Path(self.results)

    @property
    def study_name(self) -> str:
        return self.study or default_study_name(self.data)

    @property
    def storage_url(self) -> str:
        """``--storage``, else ``$GALAXY_SYNTH_STORAGE`` (a URL with a password stays off the command line), else
        the results folder's SQLite file."""
        return self.storage or os.environ.get(STORAGE_ENV) or default_storage_url(self.results_dir)

    @property
    def sampler_seed(self) -> int:
        """The search's own seed: ``--search-seed``, else ``--seed`` (the split always follows ``--seed``)."""
        return self.seed if self.search_seed is None else self.search_seed

    @property
    def study_dir(self) -> Path:
        """This study's own output folder: tables, plots, reports, models (no study overwrites another's)."""
        return study_dir(self.results_dir, self.study_name)

    @property
    def rungs(self) -> list[int] | None:
        """The epoch budgets of promotion (``--fidelities``), or None."""
        return parse_fidelities(self.fidelities) if self.fidelities else None

    def replace(self, **changes: Any) -> StudySettings:
        return dataclasses.replace(self, **changes)

    # -- freezing -----------------------------------------------------------------------------
    def frozen(self) -> dict[str, Any]:
        """Settings a resumed study must keep (changing them would mix incomparable trials)."""
        out = {}
        for f in dataclasses.fields(self):
            if f.metadata.get("frozen"):
                value = getattr(self, f.name)
                out[f.name] = sorted(value) if isinstance(value, list) else value
        return out

    @classmethod
    def stored_frozen(cls, stored: dict[str, Any]) -> dict[str, Any]:
        """A study's stored frozen settings, with settings it predates filled with what it ran with."""
        out = dict(stored)
        for f in dataclasses.fields(cls):
            legacy = f.metadata.get("legacy", dataclasses.MISSING)
            if f.metadata.get("frozen") and f.name not in out and legacy is not dataclasses.MISSING:
                out[f.name] = legacy
        return out

    @classmethod
    def from_attrs(cls, attrs: dict[str, Any], **overrides: Any) -> StudySettings:
        """The settings an existing study was created with (its frozen ones), plus ``overrides``."""
        stored = cls.stored_frozen(attrs.get("settings", {}))
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in stored.items() if k in known}
        values["extra_columns"] = list(attrs.get("extra_names") or []) or None
        return cls(**{**values, **overrides})

    def differences(self, stored: dict[str, Any]) -> list[str]:
        """``name: study has X, now Y`` for every frozen setting that differs from the stored ones."""
        stored = self.stored_frozen(stored)
        now = self.frozen()
        return [f"{k}: study has {_show(stored[k], k)}, now {_show(now[k], k)}" for k in now
                if k in stored and stored[k] != now[k]]

    # -- hardware-dependent defaults ----------------------------------------------------------
    def resolve(self, device_type: str, stored: dict[str, Any] | None = None) -> StudySettings:
        """Fill the "auto" settings: from the stored study when resuming, else from the device."""
        stored = self.stored_frozen(stored) if stored is not None else None
        changes = {}
        for f in dataclasses.fields(self):
            if f.metadata["auto"] is not None and getattr(self, f.name) is None:
                kept = stored.get(f.name) if stored is not None and f.metadata["frozen"] else None
                changes[f.name] = kept if kept is not None else auto_default(f, device_type)
        if self.objective is None and stored is not None and stored.get("objective"):
            changes["objective"] = stored["objective"]
        elif self.objective is None and self.strategy == "progressive":
            changes["objective"] = "val_acc"
        if self.strategy == "calibrating" and self.fidelities is None:  # promotion is its evidence: on by default
            changes["fidelities"] = (stored.get("fidelities") if stored is not None else None) or \
                f"{self.epochs},{3 * self.epochs},{9 * self.epochs}"
        return self.replace(**changes)

    def domain_facts(self) -> dict[str, Any]:
        """What a calibration's domain is checked against (proxies.domain.outside)."""
        return {"dataset": dataset_name(self.data), "size": self.size, "epochs": self.epochs, "schedule": self.schedule,
                "warmup": self.warmup, "precision": self.precision, "loss": self.loss, "max_samples": self.max_samples,
                "max_mflops": self.max_mflops}

    def describe_defaults(self, device_type: str) -> str:
        """One line: what this run uses, e.g. ``CPU: 32 px, ≤ 40 MFLOPs, 20 trials of 2 epochs``."""
        cap = f"≤ {self.max_mflops:g} MFLOPs" if self.max_mflops else "no FLOP cap"
        plural = lambda n, word: f"{n} {word}{'' if n == 1 else 's'}"  # noqa: E731
        return (f"{device_type.upper()}: {self.size} px, {cap}, {plural(self.trials, 'trial')} of "
                f"{plural(self.epochs, 'epoch')}, "
                f"{self.precision}")


def device_defaults(device_type: str) -> dict[str, Any]:
    """What "auto" settings (declared ``auto=``) become on a ``device_type`` of a new study."""
    return {f.name: auto_default(f, device_type) for f in dataclasses.fields(StudySettings) if f.metadata["auto"] is not None}


def _show(value: Any, name: str) -> str:
    if value is None and name == "data":
        return "the embedded set"
    return repr(value)


def check_ranges(s: StudySettings) -> None:
    """Values no study can run with, one line for all, before anything is loaded or written: every rule declared
    beside its field (:func:`synthesis.declarations.problems`), then the rules between fields."""
    found = problems(s)
    found += [p for rule in BETWEEN_FIELDS for p in rule(s)]
    if found:
        raise GalaxySynthError("; ".join(found))
