"""A study trained on Galaxy Zoo votes (--schema) end to end: search, export, and predict's per-answer columns
through the torch and ONNX engines and the CSV, Parquet and FITS writers."""

import json

import numpy as np
import optuna
import pandas as pd
import pytest
from PIL import Image

from galaxy_synth.cli import main

SCHEMA = '''votes = "n_votes"
class_question = "kind"
[[question]]
name = "merging"
answers = { yes = "merging_fraction", no = "rest" }
[[question]]
name = "kind"
asked_by = "merging.yes"
answers = { round = "round_fraction", disc = "disc_fraction", odd = "odd_fraction" }
'''
FRACTIONS = [f"{q}_{a}_fraction" for q, answers in (("merging", ("yes", "no")), ("kind", ("round", "disc", "odd")))
             for a in answers]


@pytest.fixture(scope="module")
def vote_study(tmp_path_factory):
    """Procedural galaxies with simulated votes on a two-question tree; a 2-trial study on them, its best exported."""
    from synthesis.data.synthetic import generate_galaxies

    root = tmp_path_factory.mktemp("votes")
    images, labels, extras, _ = generate_galaxies(n=120, size=32, seed=5)
    rng = np.random.default_rng(0)
    rows = []
    for i, (image, label) in enumerate(zip(images, labels)):
        Image.fromarray(image).save(root / f"g{i}.png")
        kind = rng.dirichlet([1, 1, 1])
        kind[label % 3] += 1  # the class follows the image
        kind /= kind.sum()
        rows.append({"id": f"g{i}", "file": f"g{i}.png", "z": extras[i, 0], "n_votes": int(rng.integers(20, 60)),
                     "merging_fraction": rng.uniform(0.3, 1), **{f"{a}_fraction": kind[k] for k, a in
                                                                  enumerate(("round", "disc", "odd"))}})
    pd.DataFrame(rows).to_csv(root / "labels.csv", index=False)
    (root / "schema.toml").write_text(SCHEMA)
    results = root / "results"
    common = ["--results", str(results), "--study", "v", "--no-progress"]
    assert main(["synth", "--data", str(root), "--schema", str(root / "schema.toml"), "--trials", "2", "--epochs", "1",
                 "--size", "32", "--max-samples", "80", "--val-subset", "40", "--max-params", "150000",
                 "--objective", "val_fraction_mae", *common]) == 0
    assert main(["export", "--top", "1", "--full-epochs", "1", *common]) == 0
    return root, results


def test_the_search_scores_trials_by_the_fraction_error(vote_study):
    _, results = vote_study
    study = optuna.load_study(study_name="v", storage=f"sqlite:///{results / 'study.db'}")
    trial = next(t for t in study.trials if t.value is not None)
    assert len(trial.user_attrs["val_question_mae"]) == 2
    assert trial.user_attrs["arch"]["votes"] == {"classes": 0, "answers": [2, 3], "class_question": 1}
    assert study.user_attrs["galaxy_synth"]["class_names"] == ["round", "disc", "odd"]
    assert trial.value <= 0  # −(fraction error): maximised


def test_the_card_records_the_schema(vote_study):
    _, results = vote_study
    card = json.loads((results / "studies" / "v" / "models" / "rank1" / "card.json").read_text())
    assert card["votes"]["schema"]["class_question"] == "kind" and card["votes"]["layout"]["answers"] == [2, 3]
    assert set(card["test"]["question_mae"]) == {"merging", "kind"}
    markdown = (results / "studies" / "v" / "models" / "rank1" / "card.md").read_text()
    assert "## Votes" in markdown and "`kind` (asked by `merging.yes`): round, disc, odd" in markdown


@pytest.mark.parametrize("engine, out", [("torch", "p.csv"), ("onnx", "p.parquet"), ("torch", "p.fits")])
def test_predict_writes_fractions_that_sum_to_one_and_concentrations(vote_study, tmp_path, engine, out):
    root, results = vote_study
    model = results / "studies" / "v" / "models" / "rank1"
    assert main(["predict", "--model", str(model), "--catalogue", str(root / "labels.csv"), "-o", str(tmp_path / out),
                 "--engine", engine, "--no-progress"]) == 0
    from galaxy_synth.predict.output_formats import read_output

    table = read_output(tmp_path / out)
    assert len(table) == 120 and all(c in table.columns for c in FRACTIONS)
    assert np.allclose(table[["merging_yes_fraction", "merging_no_fraction"]].sum(axis=1), 1, atol=1e-5)
    assert np.allclose(table[[c for c in FRACTIONS if c.startswith("kind_")]].sum(axis=1), 1, atol=1e-5)
    assert (table["kind_round_dirichlet"] > 1).all()
    # the class probabilities are the class question's Dirichlet mean (calibrated by the card's temperature)
    assert (table[["p_round", "p_disc", "p_odd"]].to_numpy().argmax(1) ==
            table[["kind_round_fraction", "kind_disc_fraction", "kind_odd_fraction"]].to_numpy().argmax(1)).all()
    if out.endswith(".fits"):
        from astropy.table import Table

        fits = Table.read(tmp_path / out)
        assert "Dirichlet mean" in fits["kind_odd_fraction"].description
        assert "concentration" in fits["kind_odd_dirichlet"].description
