"""Survey data end to end: FITS studies with 1, 3 and 5 bands, vote fractions as soft labels, catalogue columns."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from galaxy_synth.cli import main
from tests.helpers import write_fits_catalogue

pytest.importorskip("astropy", reason="FITS input needs astropy (the fits extra; in the dev extra)")
TINY = ["--size", "16", "--max-samples", "60", "--val-subset", "24", "--no-progress", "--max-params", "80000"]


@pytest.mark.parametrize("bands, layout", [(1, "image"), (3, "per_band"), (5, "cube")])
def test_a_fits_study_runs_synth_correlate_export_predict(tmp_path, capsys, bands, layout):
    root = write_fits_catalogue(tmp_path / "data", n=90, bands=bands, layout=layout)
    hdu = ["--hdu", "SCI"] if layout == "image" else []
    common = ["--results", str(tmp_path / "r"), "--no-progress"]
    assert main(["synth", "--data", str(root), "--trials", "6", "--epochs", "1", *TINY, *hdu, "--keep-columns", "ra,dec",
                 "--results", str(tmp_path / "r")]) == 0
    assert main(["correlate", "--ground-truth", "6", "--full-epochs", "1", *common]) == 0
    assert main(["export", "--top", "1", "--full-epochs", "1", *common]) == 0
    model = tmp_path / "r" / "studies" / "data" / "models" / "rank1"
    card = json.loads((model / "card.json").read_text())
    assert len(card["input"]["channels_list"]) == bands and card["input"]["config"]["band_mapping"]["kind"] == "asinh"
    scripted = torch.jit.load(str(model / "model.ts"))
    assert scripted(torch.rand(2, bands, 16, 16), torch.rand(2, 2)).shape == (2, 5)
    tests = pd.read_csv(model / "test_predictions.csv")
    assert {"id", "ra", "dec", "true", "predicted"} <= set(tests.columns) and len(tests) == card["test"]["n_images"]
    first = next((root / "images").glob("g1*.fits")) if layout != "per_band" else None
    if first is not None:  # predict reads the FITS as the study did
        out = tmp_path / "p.csv"
        assert main(["predict", "--model", str(model), str(first), "-o", str(out)]) == 0
        assert np.isclose(pd.read_csv(out).filter(like="p_").sum(axis=1), 1.0, atol=1e-4).all()


def test_vote_fractions_train_as_soft_labels_and_report_their_error(tmp_path):
    from synthesis.search.runner import run_study
    from synthesis.settings import StudySettings

    root = write_fits_catalogue(tmp_path / "votes", n=120, bands=3, votes=True)
    columns = ",".join(f"vote_{c}" for c in ("elliptical", "spiral_cw", "spiral_acw", "edge_on", "merger"))
    settings = StudySettings(data=str(root), soft_labels=columns, size=16, max_samples=60, val_subset=24, trials=2,
                             epochs=1, results=str(tmp_path / "r"), progress=False, objective="val_acc", max_params=80_000)
    study = run_study(settings).study
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    attrs = study.user_attrs["galaxy_synth"]
    assert attrs["class_names"] == ["elliptical", "spiral_cw", "spiral_acw", "edge_on", "merger"]
    epoch = done[0].user_attrs["history"]["epochs"][-1]
    assert 0 < epoch["val_fraction_mae"] < 0.5  # the vote-fraction error beside accuracy
    labels = pd.read_csv(root / "labels.csv")
    plurality = labels[columns.split(",")].to_numpy().argmax(1)
    from synthesis.search.study import reopen_study

    opened = reopen_study(settings.storage_url, "votes", tmp_path / "r", progress=False)
    assert np.array_equal(opened.data.labels, plurality) and opened.data.soft.shape == (120, 5)
    # the ground truth keeps the vote-fraction error too
    from dataclasses import replace

    from synthesis.full_training.rule import full_train
    from synthesis.full_training.settings import FullTrainingJob, FullTrainingSettings

    training = replace(FullTrainingSettings.of(opened.settings, epochs=1), weights_dir=tmp_path / "w", device="cpu",
                       progress=False)
    record = full_train(training, FullTrainingJob(done[0].number, 0), done[0].user_attrs, opened.prepared()).record
    assert record.fraction_mae is not None and 0 < record.fraction_mae < 0.5
