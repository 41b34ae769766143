"""Survey data (docs/BENCHMARKS.md §19): what FITS decoding costs against JPEG, and what bands, the band
mapping and vote fractions buy.

The procedural galaxies in 5 bands (float fluxes with sky noise, 40 simulated volunteer votes each)
are written twice — as FITS cubes, and as the 3-band colour JPEG (asinh-stretched i, r, g) a
survey's cutout service serves — with one catalogue whose label is each galaxy's plurality vote,
so every arm has the same labels and the same split. One fixed architecture (a 3-stage residual
net) is fully trained with the one training loop (2 seeds) on:

* ``jpeg-gri``            the colour JPEG (8 bits, the survey's stretch)
* ``fits-gri-asinh``      the same three bands as float fluxes, asinh mapping fitted on training pixels
* ``fits-grizy-asinh``    all five bands
* ``fits-grizy-robust``   all five bands, linear (median / MAD) mapping
* ``fits-grizy-votes``    all five bands, asinh, vote fractions as soft targets

scored on the test split: accuracy and balanced accuracy against the plurality label, and the
mean absolute error of the predicted vote fractions (every arm, against the same votes). Decoding
is timed as CPU seconds per 1,000 images in this one process (a contention-proof measure).
Every full training goes into bench/ground_truth/survey-procedural.csv; a killed run resumes
from its store.

    .venv/bin/python bench/survey_data.py --n 3000 --epochs 15 --work ../runs/survey --out docs/survey_data.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
ARMS = {
    "jpeg-gri": {"folder": "jpeg"},
    "fits-gri-asinh": {"folder": "fits", "bands": "0,1,2"},
    "fits-grizy-asinh": {"folder": "fits"},
    "fits-grizy-robust": {"folder": "fits", "band_mapping": "robust"},
    "fits-grizy-votes": {"folder": "fits", "soft": True},
}
VOTE_COLUMNS = ("vote_elliptical", "vote_spiral_cw", "vote_spiral_acw", "vote_edge_on", "vote_merger")


def write_catalogues(work: Path, n: int, render_size: int, seed: int) -> None:
    """The same galaxies as FITS cubes and as colour JPEGs, both labelled by plurality vote (once)."""
    from astropy.io import fits
    from PIL import Image

    from synthesis.data.synthetic import generate_band_galaxies, rgb_stretch

    if (work / "fits" / "labels.csv").is_file() and (work / "jpeg" / "labels.csv").is_file():
        return
    fluxes, _, extras, fractions, names = generate_band_galaxies(n, render_size, seed, bands=5)
    rows = []
    for folder in ("fits", "jpeg"):
        (work / folder / "images").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        fits.PrimaryHDU(np.moveaxis(fluxes[i], -1, 0)).writeto(work / "fits" / "images" / f"g{i}.fits", overwrite=True)
        Image.fromarray(rgb_stretch(fluxes[i][..., [2, 1, 0]])).save(work / "jpeg" / "images" / f"g{i}.jpg", quality=90)
        rows.append({"id": f"G{i:05d}", "label_name": names[int(fractions[i].argmax())], "z": float(extras[i, 0]),
                     "z_err": float(extras[i, 1]), **{c: float(fractions[i, k]) for k, c in enumerate(VOTE_COLUMNS)}})
    table = pd.DataFrame(rows)
    for folder, ext in (("fits", "fits"), ("jpeg", "jpg")):
        table.assign(file=[f"images/g{i}.{ext}" for i in range(n)]).to_csv(work / folder / "labels.csv", index=False)


def decode_cpu_per_thousand(work: Path, size: int, n: int) -> dict[str, float]:
    """CPU seconds per 1,000 images to decode, crop and resize one JPEG vs one 5-band FITS cube."""
    count = min(n, 500)
    from synthesis.data.decode import decode_image
    from synthesis.data.fits import FitsLayout, decode_fits

    out = {}
    for name, decode in (("jpeg", lambda i: decode_image(str(work / "jpeg" / "images" / f"g{i}.jpg"), size, 1.0)),
                         ("fits_5_band", lambda i: decode_fits([str(work / "fits" / "images" / f"g{i}.fits")],
                                                               FitsLayout(), size, 1.0))):
        decode(0)  # imports and first-file costs out of the timing
        t0 = time.process_time()
        for i in range(count):
            decode(i)
        out[name] = (time.process_time() - t0) / count * 1000
    return out


def ground_truth_url(work: Path) -> str:
    """The resumable store of every arm's full trainings."""
    return f"sqlite:///{work / 'ground_truth.db'}"


def arm_settings(work: Path, arm: str, size: int):
    from synthesis.settings import StudySettings

    spec = ARMS[arm]
    return StudySettings(data=str(work / spec["folder"]), size=size, crop=1.0, bands=spec.get("bands"),
                         band_mapping=spec.get("band_mapping", "asinh"),
                         soft_labels=",".join(VOTE_COLUMNS) if spec.get("soft") else None,
                         results=str(work / "results"), progress=False)


def fixed_architecture(prep, size: int) -> dict:
    from synthesis.models.spec import ArchSpec, StageSpec, TrainConfig

    spec = ArchSpec(num_classes=prep.num_classes, stages=(StageSpec(2, 16), StageSpec(2, 32), StageSpec(2, 64)),
                    block="residual", stem_width=16, image_size=size, in_channels=prep.in_channels, n_extra=prep.n_extra)
    return {"arch": spec.to_dict(), "train_config": TrainConfig(optimizer="adamw", lr=2e-3, batch_size=64).to_dict()}


def run_arm(work: Path, arm: str, size: int, epochs: int, seeds: list[int], votes: np.ndarray, store) -> list[dict]:
    from synthesis.full_training import FullTrainingSettings, stored_or_trained
    from synthesis.data.preparation import PreparedData, data_plan, load_study_data
    from synthesis.data.settings import DataSettings
    from synthesis.models.builder import spec_cost
    from synthesis.models.spec import model_spec_from_dict
    from synthesis.training.loop import evaluate

    settings = DataSettings.of(arm_settings(work, arm, size))
    data = load_study_data(settings)
    plan = data_plan(data, settings)
    prep = PreparedData.from_plan(data, plan, band_mapping=settings.band_mapping)
    attrs = fixed_architecture(prep, size)
    params, flops = spec_cost(model_spec_from_dict(attrs["arch"]))
    device = torch.device("cpu")
    test = prep.split("test", device)
    order = [VOTE_COLUMNS.index(f"vote_{name}") for name in prep.class_names]  # the arm's class order
    test.soft = torch.from_numpy(votes[np.asarray(plan["test"])][:, order])  # every arm scored against the same votes
    training = FullTrainingSettings(study_name=f"survey-{arm}", storage_url=ground_truth_url(work),
                                    results_dir=work / "results", weights_dir=work / "weights", precision="fp32",
                                    device="cpu", epochs=epochs, seeds=tuple(seeds), progress=False)
    rows = []
    for job in training.jobs([0]):
        record, model, _ = stored_or_trained(store, training, job, attrs, prep, need_model=True)
        result = evaluate(model, test, prep.normalizer, prep.num_classes)
        rows.append({"arm": arm, "seed": job.seed, "channels": prep.in_channels, "accuracy": result.accuracy,
                     "balanced_accuracy": result.balanced_accuracy, "macro_f1": result.macro_f1,
                     "fraction_mae": result.fraction_mae, "test_loss": result.loss,
                     "full_train_seconds": record.wall_seconds, "params": params, "mflops": flops / 1e6,
                     "n_test": len(test), "arch_json": json.dumps(attrs["arch"], sort_keys=True),
                     "full_epochs": epochs, "measured": str(record.created)[:19]})
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "arch_json"}), flush=True)
    return rows


def summarise(rows: pd.DataFrame) -> dict:
    """Per arm: the seed mean of each metric, and the paired difference to ``jpeg-gri`` (same split, same seeds)."""
    out = {}
    base = rows[rows["arm"] == "jpeg-gri"].set_index("seed")
    for arm, group in rows.groupby("arm", sort=False):
        g = group.set_index("seed")
        entry = {m: float(g[m].mean()) for m in ("accuracy", "balanced_accuracy", "fraction_mae")}
        if arm != "jpeg-gri":
            entry.update({f"{m}_minus_jpeg": float((g[m] - base[m]).mean()) for m in ("accuracy", "balanced_accuracy",
                                                                                       "fraction_mae")})
        out[arm] = entry
    return out


def plot(rows: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    arms = list(dict.fromkeys(rows["arm"]))
    for ax, metric, label in ((axes[0], "balanced_accuracy", "test balanced accuracy (plurality label)"),
                              (axes[1], "fraction_mae", "test vote-fraction MAE (lower is better)")):
        for k, arm in enumerate(arms):
            values = rows.loc[rows["arm"] == arm, metric]
            ax.scatter([k] * len(values), values, color="C0", s=18)
            ax.hlines(values.mean(), k - 0.25, k + 0.25, color="C3")
        ax.set_xticks(range(len(arms)), arms, rotation=25, ha="right", fontsize=8)
        ax.set_ylabel(label, fontsize=8)
    fig.suptitle("Procedural 5-band galaxies: one fixed network, dots = training seeds, bars = means", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=3000, help="galaxies (default 3000)")
    ap.add_argument("--size", type=int, default=32, help="network input size (default 32)")
    ap.add_argument("--render-size", type=int, default=48, help="size the galaxies are rendered and stored at")
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    ap.add_argument("--work", default="../runs/survey", help="catalogues, cache and the resumable store (outside the repo)")
    ap.add_argument("--out", default="docs/survey_data.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    work = Path(args.work).resolve()
    write_catalogues(work, args.n, args.render_size, seed=11)
    decode = decode_cpu_per_thousand(work, args.size, args.n)
    print(json.dumps({"decode_cpu_seconds_per_1000": decode}), flush=True)
    from synthesis.full_training import open_ground_truth

    store = open_ground_truth(ground_truth_url(work))
    votes = pd.read_csv(work / "fits" / "labels.csv")[list(VOTE_COLUMNS)].to_numpy(np.float32)
    rows = pd.DataFrame([r for arm in args.arms for r in run_arm(work, arm, args.size, args.epochs, args.seeds, votes, store)])
    csv = ROOT / "bench" / "ground_truth" / "survey-procedural.csv"
    rows.assign(dataset=f"procedural-5band-n{args.n}").to_csv(csv, index=False)
    out = Path(args.out)
    summary = {"command": "bench/survey_data.py " + " ".join(f"--{k.replace('_', '-')} {v if not isinstance(v, list) else ' '.join(map(str, v))}"
                                                           for k, v in vars(args).items()),
               "n": args.n, "size": args.size, "epochs": args.epochs, "seeds": args.seeds,
               "decode_cpu_seconds_per_1000": decode, "arms": summarise(rows), "ground_truth": str(csv.relative_to(ROOT))}
    out.write_text(json.dumps(summary, indent=2) + "\n")
    plot(rows, out.with_suffix(".png"))
    print(json.dumps(summary["arms"], indent=2))


if __name__ == "__main__":
    main()
