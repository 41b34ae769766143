"""The one settings object: CLI options generated from it, frozen into the study, and back."""

import argparse

import pytest

from synthesis.command_line import add_arguments, from_args, to_argv
from synthesis.errors import GalaxySynthError
from synthesis.settings import StudySettings, check_ranges, parse_fidelities


def _parser():
    p = argparse.ArgumentParser()
    add_arguments(p)
    p.add_argument("--no-progress", action="store_true")
    return p


def test_every_cli_setting_is_an_option_and_the_command_line_round_trips():
    settings = StudySettings(data="some/folder", size=48, merge=["a,b=c"], drop=["d", "e"], extra_columns=["z"],
                             trials=7, max_mflops=12.5, objective="val_acc", fidelities="2,6,18", progress=False)
    back = from_args(_parser().parse_args(to_argv(settings)))
    assert back == settings


def test_frozen_settings_are_what_a_resume_checks():
    s = StudySettings(epochs=3, seed=5)
    frozen = s.frozen()
    assert frozen["epochs"] == 3 and frozen["seed"] == 5 and "trials" not in frozen  # --trials may grow
    assert s.differences({**frozen, "epochs": 2}) == ["epochs: study has 2, now 3"]
    assert StudySettings.from_attrs({"settings": frozen}).epochs == 3


def test_hardware_defaults_fill_only_what_was_left_to_auto():
    cpu = StudySettings().resolve("cpu")
    assert (cpu.size, cpu.max_mflops, cpu.trials) == (32, 40.0, 20)
    assert StudySettings(size=64).resolve("cpu").size == 64
    assert StudySettings().resolve("cpu", {"size": 48, "max_mflops": 10.0}).size == 48  # a resume keeps the study's


def test_a_new_study_costs_flops_unless_asked_and_one_made_before_cost_keeps_flops():
    assert StudySettings().resolve("cpu").cost == "flops"  # a new study: time only when asked, until it is checked
    assert StudySettings(cost="time").resolve("cpu").cost == "time"
    made_with_time = StudySettings(cost="time").resolve("cpu").frozen()
    assert StudySettings().resolve("cpu", made_with_time).cost == "time"  # a resume without --cost keeps the study's
    old = StudySettings(size=32, max_mflops=40.0, trials=20).resolve("cpu").frozen()
    del old["cost"]  # what a study made before --cost stored
    resumed = StudySettings().resolve("cpu", old)
    assert resumed.cost == "flops" and resumed.differences(old) == []  # its front stays of FLOPs; resuming is allowed
    assert StudySettings.from_attrs({"settings": old}).cost == "flops"
    assert StudySettings(cost="time").resolve("cpu", old).differences(old) == ["cost: study has 'flops', now 'time'"]
    with pytest.raises(GalaxySynthError, match="--cost 'watts'"):
        check_ranges(StudySettings(cost="watts"))


def test_the_search_seed_and_the_storage_from_the_environment(monkeypatch):
    assert StudySettings(seed=3).sampler_seed == 3 and StudySettings(seed=3, search_seed=9).sampler_seed == 9
    monkeypatch.setenv("GALAXY_SYNTH_STORAGE", "journal:/tmp/x.journal")
    assert StudySettings().storage_url == "journal:/tmp/x.journal"
    assert StudySettings(storage="sqlite:///a.db").storage_url == "sqlite:///a.db"


@pytest.mark.parametrize("text", ["2", "2,3,9", "6,2", "x,y"])
def test_bad_fidelities_and_ranges_are_one_line(text):
    with pytest.raises(GalaxySynthError):
        parse_fidelities(text)
    assert parse_fidelities("2,6,18") == [2, 6, 18]
    with pytest.raises(GalaxySynthError, match="--epochs must be >= 1.*--warmup"):
        check_ranges(StudySettings(epochs=0, warmup=1.5))
