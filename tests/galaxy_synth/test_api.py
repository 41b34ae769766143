"""The Python API is the command line's: same study, same rank, one-line errors."""

import pytest

from galaxy_synth import api
from synthesis.errors import GalaxySynthError
from tests.helpers import tiny


def test_synth_then_rank_from_python(tmp_path):
    settings = tiny(tmp_path, trials=2)
    result = api.synth(settings)
    assert result.study_name == "t" and all(p.is_file() for p in result.written)
    assert result.settings.trials == 2 and result.settings.size == 32  # resolved: no "auto" left
    table = api.rank("t", tmp_path / "results")
    assert table.attrs["study"] == "t" and table["finished"].sum() == 2
    assert {"rank_score", "on_front", "flops", "cpu_images_per_second"} <= set(table.columns)
    with pytest.raises(GalaxySynthError, match="no study 'nope'"):
        api.rank("nope", tmp_path / "results")


def test_objects_that_cannot_cross_processes_keep_the_run_in_this_one(tmp_path):
    import optuna

    seen = []
    api.synth(tiny(tmp_path, trials=1), sampler=optuna.samplers.RandomSampler(seed=0), on_ready=lambda o: seen.append(o.execution))
    assert seen[0].workers == 1 and "Python objects" in seen[0].reason
