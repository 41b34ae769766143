"""Errors a user can fix are one family, which the command line turns into one line and exit code 2."""

from galaxy_synth.cli import main
from synthesis.errors import DataError, GalaxySynthError, StudyMismatchError


def test_every_user_error_is_a_galaxy_synth_error():
    assert issubclass(DataError, GalaxySynthError) and issubclass(StudyMismatchError, GalaxySynthError)


def test_the_cli_prints_one_line_and_exits_2(tmp_path, capsys):
    assert main(["rank", "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("galaxy-synth: error: ")
