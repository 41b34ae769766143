"""Votes against hard labels (issue #40): is training on Galaxy Zoo's vote counts worth it on hsc_gc1_interacting?

    .venv/bin/python bench/votes.py --epochs 15 --seeds 0 1 2 --work ../runs/votes --out docs/votes.json
    .venv/bin/python bench/votes.py --quick --work /tmp/votes-quick --out /tmp/votes-quick/votes.json  # smoke test

(``--data DIR`` where the shared data are not at ../shared/data/hsc_gc1_interacting.)

One fixed network (3 residual stages 16-32-64, AdamW 2e-3, batch 64, cosine to zero: the full-training rule),
trained with the one training loop the same way three ways, each with and without the redshift ``z`` as an extra
input, with 2-3 training seeds:

* ``votes``  the vote head of docs/schemas/hsc_gc1.toml (galaxy_type, interaction, interaction_type asked by
             interaction.yes) trained on the vote counts by the Dirichlet-multinomial likelihood (``--schema``);
* ``hard``   the same head, each question's counts on the training and validation galaxies replaced by one vote
             for its majority answer (the standard votes-against-binarised comparison; test votes untouched);
* ``plain``  a 4-way classifier on the ``label`` column (ring, fan, distorted, tail): its class probabilities
             stand for the interaction_type fractions.

The split is the catalogue's own ``source_split`` column (train 833, valid 208, test 261), the same rows for
every arm. On the test split, per arm: per-question fraction MAE (mean |predicted − voted fraction| over the
galaxies asked the question), the four-way accuracy (class = most-voted interaction_type answer = label_name).
Paired comparisons over test galaxies (each galaxy's error or correctness averaged over the seeds first; a
bootstrap over galaxies, 2000 resamples, 95% interval): fraction MAE votes − hard per question, accuracy
votes − plain and hard − plain. The embedding (the pooled features the head sees) of each test galaxy's nearest
training galaxy (cosine) has the same class how often, against chance (Σ_k p_test(k)·p_train(k)). Last, a FITS
round trip: a one-trial ``--schema`` study exported and ``predict -o test.fits`` over the test galaxies, read back
with astropy (units, descriptions, the fraction columns summing to 1 per question).

Every full training goes into bench/ground_truth/hsc_gc1_interacting-votes.csv (one row per arm, z and seed);
trainings are stored in WORK's ground-truth database, so a killed run resumes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "hsc_gc1_interacting"
SCHEMA = ROOT / "docs" / "schemas" / "hsc_gc1.toml"
ARMS = ("votes", "hard", "plain")
CLASS_QUESTION = "interaction_type"
BOOTSTRAP = 2000


def quick_catalogue(source: Path, work: Path, rows: int) -> Path:
    """The first ``rows`` galaxies of each source split as a catalogue of their own (absolute image paths)."""
    folder = work / source.name
    folder.mkdir(parents=True, exist_ok=True)
    df = pd.read_csv(source / "labels.csv", dtype=str, keep_default_na=False)
    df = df.groupby("source_split", group_keys=False).head(rows)
    df.assign(file=[str(source / "images" / f) for f in df["file"]]).to_csv(folder / "labels.csv", index=False)
    return folder


def prepared(data_dir: Path, arm: str, with_z: bool, size: int, work: Path):
    """The arm's data with the catalogue's source split, preprocessing fitted on its training rows."""
    from synthesis.data import DataSettings, PreparedData, load_study_data
    from synthesis.settings import StudySettings

    settings = DataSettings.of(StudySettings(data=str(data_dir), schema=str(SCHEMA) if arm != "plain" else None,
                                             extra_columns=["z"] if with_z else [], size=size, crop=1.0,
                                             results=str(work / "results"), progress=False))
    data = load_study_data(settings)
    split = pd.read_csv(data_dir / "labels.csv", dtype=str, keep_default_na=False).set_index("id")["source_split"]
    where = split.loc[data.ids].to_numpy()
    plan = {name: np.flatnonzero(where == source).tolist() for name, source in
            (("train", "train"), ("val", "valid"), ("test", "test"))}
    plan.update(trial_train=plan["train"], trial_val=plan["val"])
    if arm == "hard":  # one vote for each question's majority answer, on the rows it trains and validates on
        votes = data.votes.copy()
        rows = np.asarray(plan["train"] + plan["val"])
        votes[rows] = majority_votes(votes[rows], answer_counts(data.schema))
        data = dataclasses.replace(data, votes=votes, fingerprint=data.fingerprint + "|majority-votes")
    return PreparedData.from_plan(data, plan)


def answer_counts(schema: dict) -> list[int]:
    return [len(q["answers"]) for q in schema["question"]]


def majority_votes(counts: np.ndarray, answers: list[int]) -> np.ndarray:
    """Each question's counts replaced by a single vote for its most-voted answer (0 where it was not asked)."""
    out = np.zeros_like(counts)
    start = 0
    for a in answers:
        block = counts[:, start:start + a]
        asked = block.sum(axis=1) > 0
        out[np.flatnonzero(asked), start + block[asked].argmax(axis=1)] = 1.0
        start += a
    return out


def fixed_architecture(prep, size: int) -> dict:
    from synthesis.models import ArchSpec, OutputLayout, StageSpec, TrainConfig

    spec = ArchSpec(num_classes=prep.num_classes, stages=(StageSpec(2, 16), StageSpec(2, 32), StageSpec(2, 64)),
                    block="residual", stem_width=16, image_size=size, in_channels=prep.in_channels, n_extra=prep.n_extra,
                    votes=OutputLayout.of(prep.data.schema, prep.num_classes))
    return {"arch": spec.to_dict(), "train_config": TrainConfig(optimizer="adamw", lr=2e-3, batch_size=64).to_dict()}


@torch.no_grad()
def outputs(model, prep, split: str) -> dict[str, np.ndarray]:
    """Class probabilities (the class question's order for every arm), concentrations and embeddings of a split."""
    from synthesis.models import vote_head_of

    model.eval()
    part = prep.split(split, torch.device("cpu"))
    x = prep.normalizer(part.x)
    extra = part.extra if prep.n_extra else None
    logits, concentrations = model.votes(x, extra) if vote_head_of(model) is not None else (model(x, extra), None)
    out = {"probabilities": logits.softmax(1).numpy(), "embeddings": model.features(x, extra).numpy(),
           "labels": part.y.numpy()}
    if concentrations is not None:
        out["concentrations"] = concentrations.numpy()
    return out


def class_order(prep, answers: tuple[str, ...]) -> list[int]:
    """The plain classifier's columns in the class question's answer order (distorted → distortion)."""
    return [next(k for k, n in enumerate(prep.class_names) if n[:4] == a[:4]) for a in answers]


def per_galaxy(prep_votes, out: dict, schema: dict, order: list[int] | None) -> dict[str, np.ndarray]:
    """Per test galaxy: |predicted − voted| fraction per question (NaN where not asked) and whether the class is right."""
    test = np.asarray(prep_votes.plan["test"])
    counts = prep_votes.data.votes[test]
    errors, start = {}, 0
    for q in schema["question"]:
        a = len(q["answers"])
        observed = counts[:, start:start + a]
        n = observed.sum(axis=1, keepdims=True)
        if "concentrations" in out:
            alpha = out["concentrations"][:, start:start + a]
            predicted = alpha / alpha.sum(axis=1, keepdims=True)
        elif q["name"] == CLASS_QUESTION:
            predicted = out["probabilities"][:, order]
        else:
            start += a
            continue
        err = np.abs(predicted - observed / np.maximum(n, 1e-12)).mean(axis=1)
        errors[q["name"]] = np.where(n[:, 0] > 0, err, np.nan)
        start += a
    probs = out["probabilities"] if order is None else out["probabilities"][:, order]
    truth = prep_votes.data.labels[test]
    return {**errors, "correct": (probs.argmax(axis=1) == truth).astype(float)}


def neighbour_rate(train: dict, test: dict) -> tuple[float, float]:
    """How often a test galaxy's nearest training galaxy (cosine, embeddings) has its class; and chance."""
    def unit(v):
        return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)

    nearest = (unit(test["embeddings"]) @ unit(train["embeddings"]).T).argmax(axis=1)
    rate = float((train["labels"][nearest] == test["labels"]).mean())
    k = int(max(train["labels"].max(), test["labels"].max())) + 1
    chance = float(np.dot(np.bincount(test["labels"], minlength=k) / len(test["labels"]),
                          np.bincount(train["labels"], minlength=k) / len(train["labels"])))
    return rate, chance


def run_arm(data_dir: Path, arm: str, with_z: bool, args: argparse.Namespace, reference, store) -> list[dict]:
    """The arm's full trainings (stored or trained now), each scored per test galaxy against ``reference``'s votes."""
    from synthesis.full_training import FullTrainingSettings, stored_or_trained
    from synthesis.models import model_spec_from_dict, spec_cost

    work = Path(args.work)
    prep = prepared(data_dir, arm, with_z, args.size, work)
    if list(prep.data.ids) != list(reference.data.ids):
        raise SystemExit(f"arm {arm}: the catalogue's rows differ from the votes arm's")
    schema = reference.data.schema
    answers = tuple(next(q for q in schema["question"] if q["name"] == CLASS_QUESTION)["answers"])
    order = class_order(prep, answers) if arm == "plain" else None
    attrs = fixed_architecture(prep, args.size)
    params, flops = spec_cost(model_spec_from_dict(attrs["arch"]))
    training = FullTrainingSettings(study_name=f"votes-{arm}-{'z' if with_z else 'noz'}",
                                    storage_url=f"sqlite:///{work / 'ground_truth.db'}", results_dir=work / "results",
                                    weights_dir=work / "weights", precision="fp32", device="cpu", epochs=args.epochs,
                                    seeds=tuple(args.seeds), progress=False)
    rows = []
    for job in training.jobs([0]):
        record, model, _ = stored_or_trained(store, training, job, attrs, prep, need_model=True)
        test, train = outputs(model, prep, "test"), outputs(model, prep, "train")
        galaxies = per_galaxy(reference, test, schema, order)
        rate, chance = neighbour_rate(train, test)
        rows.append({"dataset": data_dir.name, "arm": arm, "z": with_z, "seed": job.seed,
                     "accuracy": float(galaxies["correct"].mean()), "balanced_accuracy": record.balanced_accuracy,
                     "macro_f1": record.macro_f1, "test_loss": record.test_loss,
                     **{f"fraction_mae_{q}": float(np.nanmean(v)) for q, v in galaxies.items() if q != "correct"},
                     "nn_same_class": rate, "nn_chance": chance, "full_train_seconds": record.wall_seconds,
                     "params": params, "mflops": flops / 1e6, "n_test": len(test["labels"]), "size": args.size,
                     "arch_json": json.dumps(attrs["arch"], sort_keys=True), "full_epochs": args.epochs,
                     "measured": str(record.created)[:19], "galaxies": galaxies})
        print(json.dumps({k: v for k, v in rows[-1].items() if k not in ("arch_json", "galaxies")}), flush=True)
    return rows


def paired(a: np.ndarray, b: np.ndarray, seed: int = 0) -> dict[str, float]:
    """Mean of a − b over the galaxies where both are defined, with a bootstrap 95% interval over galaxies."""
    keep = np.isfinite(a) & np.isfinite(b)
    d = a[keep] - b[keep]
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, len(d), (BOOTSTRAP, len(d)))].mean(axis=1)
    return {"mean": float(d.mean()), "lo": float(np.quantile(means, 0.025)), "hi": float(np.quantile(means, 0.975)),
            "n": int(len(d))}


def summarise(rows: list[dict], questions: list[str]) -> dict:
    """Per z: each arm's seed-mean metrics, and the paired differences over test galaxies (seed-averaged first)."""
    out = {}
    for with_z in sorted({r["z"] for r in rows}):
        mine = [r for r in rows if r["z"] == with_z]
        arms = {arm: [r for r in mine if r["arm"] == arm] for arm in ARMS if any(r["arm"] == arm for r in mine)}

        def averaged(arm, key):
            return np.mean([r["galaxies"][key] for r in arms[arm]], axis=0) if key in arms[arm][0]["galaxies"] else None

        entry = {"arms": {arm: {k: float(np.mean([r[k] for r in rs])) for k in rs[0]
                                if k.startswith(("fraction_mae_", "accuracy", "balanced_accuracy", "nn_"))}
                          for arm, rs in arms.items()}}
        if {"votes", "hard"} <= set(arms):
            entry["fraction_mae_votes_minus_hard"] = {q: paired(averaged("votes", q), averaged("hard", q))
                                                      for q in questions}
        for arm in ("votes", "hard"):
            if arm in arms and "plain" in arms:
                entry[f"accuracy_{arm}_minus_plain"] = paired(averaged(arm, "correct"), averaged("plain", "correct"))
        out["with_z" if with_z else "without_z"] = entry
    return out


def markdown(summary: dict, questions: list[str]) -> str:
    lines = []
    for key, entry in summary.items():
        lines += [f"\n### {key.replace('_', ' ')}\n", "| arm | accuracy | " + " | ".join(f"MAE {q}" for q in questions)
                  + " | NN same class (chance) |", "|---" * (len(questions) + 3) + "|"]
        for arm, m in entry["arms"].items():
            maes = " | ".join(f"{m[f'fraction_mae_{q}']:.4f}" if f"fraction_mae_{q}" in m else "–" for q in questions)
            lines.append(f"| {arm} | {m['accuracy']:.3f} | {maes} | {m['nn_same_class']:.3f} ({m['nn_chance']:.3f}) |")
        for name, value in entry.items():
            if name == "arms":
                continue
            for label, p in (value.items() if "mean" not in value else [("", value)]):
                lines.append(f"- {name}{' ' + label if label else ''}: {p['mean']:+.4f} [{p['lo']:+.4f}, {p['hi']:+.4f}] (n={p['n']})")
    return "\n".join(lines)


def fits_round_trip(data_dir: Path, work: Path, size: int, quick: bool) -> dict:
    """A one-trial --schema study exported, predict over the test galaxies into FITS, read back with astropy."""
    from astropy.table import Table

    from galaxy_synth.cli import main as cli

    results = work / "fits-study"
    common = ["--results", str(results), "--study", "votes-fits", "--no-progress"]
    small = ["--max-samples", "60", "--val-subset", "30"] if quick else ["--max-samples", "400", "--val-subset", "100"]
    if cli(["synth", "--data", str(data_dir), "--schema", str(SCHEMA), "--trials", "1", "--epochs", "1", "--size",
            str(size), "--crop", "1.0", *small, *common]) or cli(["export", "--top", "1", "--full-epochs", "1", *common]):
        raise SystemExit("the FITS round trip's study or export failed")
    catalogue = pd.read_csv(data_dir / "labels.csv", dtype=str, keep_default_na=False)
    test = catalogue[catalogue["source_split"] == "test"]
    test = test.assign(file=[f if Path(f).is_absolute() else str(data_dir / "images" / f) for f in test["file"]])
    test[["id", "file", "ra", "dec", "z"]].to_csv(work / "fits-test.csv", index=False)
    out = work / "fits-test.fits"
    if cli(["predict", "--model", str(results / "studies" / "votes-fits" / "models" / "rank1"), "--catalogue",
            str(work / "fits-test.csv"), "--keep-columns", "ra,dec", "-o", str(out), "--overwrite", "--no-progress"]):
        raise SystemExit("predict -o test.fits failed")
    table = Table.read(out)
    fractions = [c for c in table.colnames if c.startswith(CLASS_QUESTION) and c.endswith("_fraction")]
    sums = np.sum([np.asarray(table[c]) for c in fractions], axis=0)
    return {"rows": len(table), "ra_unit": str(table["ra"].unit), "fraction_columns": fractions,
            "descriptions": {c: table[c].description for c in fractions[:1] + [fractions[0].replace("_fraction", "_dirichlet")]},
            "max_abs_sum_minus_1": float(np.nanmax(np.abs(sums - 1))), "file": str(out)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(DATA), help="the hsc_gc1_interacting folder (default: ../shared/data/…)")
    ap.add_argument("--size", type=int, default=64, help="network input size (default 64)")
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    ap.add_argument("--z", choices=("both", "with", "without"), default="both", help="z as an extra input (default both)")
    ap.add_argument("--work", default="../runs/votes", help="cache, weights and the resumable store (outside the repo)")
    ap.add_argument("--out", default="docs/votes.json")
    ap.add_argument("--quick", action="store_true", help="smoke test: 60 galaxies per split, 1 epoch, 1 seed, 16 px")
    args = ap.parse_args()
    if args.quick:
        args.epochs, args.seeds, args.size = 1, [0], 16
    torch.set_num_threads(1)
    work = Path(args.work).resolve()
    args.work = str(work)
    data_dir = quick_catalogue(Path(args.data), work, 60) if args.quick else Path(args.data)
    from synthesis.full_training import open_ground_truth

    store = open_ground_truth(f"sqlite:///{work / 'ground_truth.db'}")
    t0 = time.time()
    rows = []
    for with_z in {"both": (False, True), "with": (True,), "without": (False,)}[args.z]:
        reference = prepared(data_dir, "votes", with_z, args.size, work)
        rows += [r for arm in args.arms for r in run_arm(data_dir, arm, with_z, args, reference, store)]
    questions = [q["name"] for q in reference.data.schema["question"]]
    summary = summarise(rows, questions)
    table = pd.DataFrame([{k: v for k, v in r.items() if k != "galaxies"} for r in rows])
    csv = work / "votes-quick.csv" if args.quick else ROOT / "bench" / "ground_truth" / f"{data_dir.name}-votes.csv"
    table.to_csv(csv, index=False)
    result = {"command": "bench/votes.py " + " ".join(f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}"
                                                      for k, v in vars(args).items() if k != "quick") + (" --quick" if args.quick else ""),
              "split": "the catalogue's source_split column (train / valid / test)", "epochs": args.epochs,
              "seeds": args.seeds, "size": args.size, "summary": summary, "fits_round_trip": fits_round_trip(
                  data_dir, work, args.size, args.quick), "ground_truth": str(csv), "seconds": round(time.time() - t0)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(summary, questions))
    print(json.dumps(result["fits_round_trip"], indent=2))


if __name__ == "__main__":
    main()
