"""export: every model's folder and the summary, a stored full training reused, an unknown study one line."""

import json

from galaxy_synth.cli import main


def test_every_file_is_there_and_the_summary_lists_both(exported_study):
    for rank in (1, 2):
        folder = exported_study / "studies/exp/models" / f"rank{rank}"
        assert {p.name for p in folder.iterdir()} == {"model.pt", "arch.json", "model.ts", "model.onnx", "card.json", "card.md",
                                                      "test_predictions.csv", "reliability.png"}
    assert not [p for p in (exported_study / "studies/exp/models").iterdir() if p.name.startswith(".") or p.name.endswith(".old")]
    summary = json.loads((exported_study / "studies/exp/top2_models.json").read_text())
    assert [s["rank"] for s in summary] == [1, 2] and summary[0]["rank_score"] >= summary[1]["rank_score"]
    assert summary[0]["ranked_by"] == "objective"


def test_a_second_export_reuses_the_stored_full_training(exported_study, capsys):
    before = json.loads((exported_study / "studies/exp/models/rank1/card.json").read_text())
    assert before["training"]["weights"] == "trained by galaxy-synth export"
    assert main(["export", "--top", "1", "--full-epochs", "2", "--results", str(exported_study), "--study", "exp",
                 "--no-progress"]) == 0
    after = json.loads((exported_study / "studies/exp/models/rank1/card.json").read_text())
    assert after["training"]["weights"].startswith("reused from an earlier full training")
    assert after["test"] == before["test"]


def test_export_of_an_unknown_study_is_one_line(exported_study, capsys):
    assert main(["export", "--results", str(exported_study), "--study", "nope"]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0
