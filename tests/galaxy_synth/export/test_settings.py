"""Export reads its own settings, made once from the request; its full training is derived from them and the study."""

from pathlib import Path

from galaxy_synth.export.settings import ExportSettings
from synthesis.settings import STORAGE_ENV, StudySettings


def test_the_full_training_takes_the_requests_budget_and_seed_and_the_studys_address_and_precision():
    request = ExportSettings("sqlite:///r/study.db", "s", Path("r"), top=2, full_epochs=5, seed=3, device="cpu")
    study = StudySettings(study="s", results="r", storage="sqlite:///r/study.db", precision="bf16", device="cpu",
                          progress=False)
    training = request.full_training(study)
    assert (training.epochs, training.seeds, training.precision, training.device) == (5, (3,), "bf16", "cpu")
    assert training.weights_dir == Path("r") / "studies" / "s" / "ground_truth" and training.study_name == "s"
    assert not training.progress


def test_the_api_builds_the_request_with_the_clis_defaults(monkeypatch, tmp_path):
    """``api.export``'s keywords become one ExportSettings (what ``galaxy-synth export`` passes through)."""
    import galaxy_synth.export as export
    from galaxy_synth import api
    from galaxy_synth.cli import _build_parser

    monkeypatch.delenv(STORAGE_ENV, raising=False)  # the results folder's database
    seen = []
    monkeypatch.setattr(export, "export_top", lambda settings: seen.append(settings) or [])
    args = _build_parser().parse_args(["export", "--results", str(tmp_path), "--top", "2", "--knee", "--no-progress"])
    (tmp_path / "study.db").touch()
    assert args.func(args) == 0
    s = seen[0]
    assert (s.top, s.knee, s.by, s.full_epochs, s.seed, s.device, s.progress, s.study) == \
        (2, True, "objective", 30, 0, "auto", False, None)
    assert s.results_dir == tmp_path and s.storage_url == f"sqlite:///{tmp_path / 'study.db'}"
    api.export(results=tmp_path)
    assert seen[1] == ExportSettings(s.storage_url, None, tmp_path)  # the API's defaults are the dataclass's
