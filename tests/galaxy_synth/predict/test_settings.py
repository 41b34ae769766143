"""Predict reads its own settings, made once from the command line or the API's keywords."""

from pathlib import Path

from galaxy_synth.cli import _build_parser
from galaxy_synth.predict.settings import PredictSettings


def test_predict_settings_come_from_the_command_line():
    args = _build_parser().parse_args(["predict", "--model", "m", "a.png", "b/", "--keep-columns", "ra, dec",
                                       "--chunk-size", "64", "--tta", "--no-progress"])
    p = PredictSettings.of(args)
    assert p.model == Path("m") and p.images == ("a.png", "b/") and p.keep_columns == ("ra", "dec")
    assert (p.chunk_size, p.tta, p.progress, p.precision, p.engine, p.out) == (64, True, False, "auto", "auto",
                                                                               Path("predictions.csv"))


def test_the_api_builds_the_same_settings_from_its_keywords(monkeypatch):
    import galaxy_synth.predict as predict
    from galaxy_synth import api

    seen = []
    monkeypatch.setattr(predict, "run_predict", lambda settings: seen.append(settings))
    api.classify("m", ["a.png", "b/"], keep_columns=["ra", "dec"], chunk_size=64, tta=True, progress=False,
                 precision="auto", engine="auto")
    args = _build_parser().parse_args(["predict", "--model", "m", "a.png", "b/", "--keep-columns", "ra,dec",
                                       "--chunk-size", "64", "--tta", "--no-progress"])
    assert seen == [PredictSettings.of(args)]
    api.classify("m", catalogue="c.csv")
    assert seen[1] == PredictSettings(Path("m"), catalogue="c.csv")  # the API's defaults: fp32 on torch
