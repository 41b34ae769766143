"""What release 0.1.0 wrote still opens: its study, calibration and exported model (tests/fixtures/release_0_1).

The artefacts were made once, by 0.1.0's own code (tests/fixtures/release_0_1/make.py says how);
each test opens a copy in tmp_path through the public API only, so the repository is never written.
"""

import json
import shlex
import shutil
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from galaxy_synth import api
from galaxy_synth.cli import main
from synthesis.settings import StudySettings

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "release_0_1"
STUDY = "release"
MODEL = Path("results/studies/release/models/rank1")
RANK_COLUMNS = ["trial", "finished", "rank_score", "proxy_score", "objective", "val_acc", "val_balanced_acc", "params_count"]


@pytest.fixture
def release(tmp_path) -> Path:
    """A writable copy of the fixtures (the repository may be read-only; SQLite writes beside study.db even to read)."""
    copy = tmp_path / "release_0_1"
    shutil.copytree(FIXTURES, copy, ignore=shutil.ignore_patterns("make.py", "__pycache__"), copy_function=shutil.copyfile)
    for path in [copy, *copy.rglob("*")]:
        path.chmod(path.stat().st_mode | stat.S_IWUSR)
    return copy


def synth_argv(results: Path) -> list[str]:
    """The ``synth`` command that made the study (from provenance.json), on the copy's results folder."""
    argv = shlex.split(json.loads((FIXTURES / "provenance.json").read_text())["commands"][0])[1:]
    argv[argv.index("--results") + 1] = str(results)
    return argv


def trial_count(results: Path) -> int:
    return len(api.rank(STUDY, results))


def test_rank_lists_the_three_trials_with_their_stored_metrics(release):
    table = api.rank(STUDY, release / "results")
    expected = pd.read_csv(release / "expected" / "rank.csv")
    assert table.attrs["study"] == STUDY and len(table) == len(expected) == 3 and table["finished"].all()
    assert set(RANK_COLUMNS) <= set(table.columns)
    assert set(table["cost_by"]) == {"flops"}  # made before --cost: its front and knee stay of FLOPs
    by_trial = table.set_index("trial").loc[expected["trial"]]
    for column in ("objective", "val_acc", "val_balanced_acc", "params_count"):  # as the trials stored them
        assert np.allclose(by_trial[column], expected[column], rtol=1e-6), column


def test_the_same_synth_command_resumes_without_a_new_trial(release, capsys):
    results = release / "results"
    argv = synth_argv(results)
    assert argv[:3] == ["synth", "--trials", "3"]
    assert main(argv) == 0, capsys.readouterr().err
    assert "3 completed trial(s), target 3" in capsys.readouterr().err
    assert trial_count(results) == 3
    changed = [*argv[:argv.index("--epochs")], "--epochs", "2", *argv[argv.index("--epochs") + 2:]]
    assert main(changed) == 2  # the stored settings are read and checked, not ignored
    assert "created with other settings (epochs: study has 1, now 2)" in capsys.readouterr().err
    assert trial_count(results) == 3


def test_synth_settings_resume_on_regenerated_data_without_the_cache(release):
    """Without results/cache the embedded set is generated again: the study accepts it, and it is the same data."""
    results = release / "results"
    shutil.rmtree(results / "cache")
    settings = StudySettings(results=str(results), study=STUDY, trials=3, size=16, synthetic_n=200, max_samples=80,
                             val_subset=40, epochs=1, max_params=20_000, objective="composite", workers=1, progress=False)
    result = api.synth(settings)
    assert result.study_name == STUDY and result.settings.objective == "composite"
    assert len(result.study.trials) == 3 and trial_count(results) == 3
    # The embedded set's fingerprint names its recipe (n, size, seed), not its pixels: compare what was made again.
    (pixels,) = (results / "cache").glob("*.npy")
    (rows,) = (results / "cache").glob("*.rows.npz")
    (stored_pixels,) = (FIXTURES / "results" / "cache").glob("*.npy")
    (stored_rows,) = (FIXTURES / "results" / "cache").glob("*.rows.npz")
    np.testing.assert_array_equal(np.load(pixels), np.load(stored_pixels), err_msg="regenerated pixels")
    with np.load(rows) as made, np.load(stored_rows) as stored:
        for name in ("labels", "ids", "extras"):
            np.testing.assert_array_equal(made[name], stored[name], err_msg=f"regenerated {name}")


@pytest.mark.parametrize("cache", [True, False], ids=["cached", "regenerated"])
def test_report_opens_the_study(release, cache, capsys):
    results = release / "results"
    if not cache:
        shutil.rmtree(results / "cache")
    assert main(["report", "--results", str(results), "--study", STUDY]) == 0, capsys.readouterr().err
    page = (results / "studies" / STUDY / "report" / "index.html").read_text()
    exported = json.loads((results / "studies" / STUDY / "top1_models.json").read_text())[0]
    assert "3 completed, 0 pruned, 0 failed trials" in page
    assert "121/30/49" in page  # the split the study stored (train/val/test)
    assert "calibration <code>fitted:gz1-pool-32px-cap40</code>" in page  # the one it froze when it was created
    assert f"rank 1 — trial {exported['trial']}" in page  # the exported model's card, read back
    assert (results / "studies" / STUDY / "report" / "confusion_rank1.png").is_file()


def test_the_calibration_loads_and_rescoring_uses_it(release):
    path = release / "calibration" / "proxy_weights.json"
    stored = json.loads(path.read_text())
    table = api.rank(STUDY, release / "results", calibration=str(path))
    assert (table.attrs["calibration"], table.attrs["calibration_hash"]) == (stored["name"], stored["hash"])
    assert table.attrs["calibration_file"] == str(path)
    expected = pd.read_csv(release / "expected" / "rank.csv")
    by_trial = table.set_index("trial").loc[expected["trial"]]
    assert np.allclose(by_trial["proxy_score"], expected["proxy_score"], rtol=1e-6)
    default = api.rank(STUDY, release / "results")
    assert default.attrs["calibration_hash"] != stored["hash"]  # the file above, not the shipped default, scored them
    shutil.copyfile(path, release / "results" / "proxy_weights.json")  # where correlate promotes a calibration
    assert api.rank(STUDY, release / "results").attrs["calibration_hash"] == stored["hash"]


ADDED_COLUMNS = ("predictive_entropy", "mutual_information", "reliable")


def by_file(table: pd.DataFrame) -> pd.DataFrame:
    """Predictions in file-name order, keyed by name (the folder they were read from differs)."""
    return table.assign(file=[Path(f).name for f in table["file"]]).set_index("file").sort_index()


def numbers(table: pd.DataFrame) -> pd.DataFrame:
    return table[[c for c in table.columns if c.startswith("p_")] + ["domain_z"]]


@pytest.mark.parametrize("tta", [False, True], ids=["plain", "tta"])
def test_the_exported_model_predicts_what_it_did(release, tta):
    expected = pd.read_csv(release / "expected" / ("predictions_tta.csv" if tta else "predictions.csv"))
    model = api.load_model(release / MODEL)
    got = by_file(api.predict(model, [release / "images"], extra_csv=release / "images" / "extra.csv", tta=tta))
    expected = by_file(expected)
    # the release's columns, in its order, and the uncertainty columns added since (issue #37): nothing else moved
    assert [c for c in got.columns if c not in ADDED_COLUMNS] == list(expected.columns) and "predictive_entropy" in got
    assert list(got.index) == list(expected.index)
    assert np.allclose(numbers(got), numbers(expected), atol=1e-4)
    assert list(got["predicted"]) == list(expected["predicted"])


def test_classify_writes_the_same_probabilities(release, tmp_path):
    out = tmp_path / "predictions.csv"
    api.classify(release / MODEL, [release / "images"], out=out, extra_csv=release / "images" / "extra.csv",
                 progress=False, workers=1)
    expected, got = by_file(pd.read_csv(release / "expected" / "predictions.csv")), by_file(pd.read_csv(out))
    assert list(got.index) == list(expected.index) and (got["status"] == "ok").all()
    assert np.allclose(numbers(got), numbers(expected), atol=1e-4)
    assert list(got["predicted"]) == list(expected["predicted"])
