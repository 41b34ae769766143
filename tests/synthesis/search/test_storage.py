"""Storages as users have them: one-line errors before any work, passwords never shown, the journal file."""

import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from galaxy_synth.cli import main
from synthesis.search.storage import HeartbeatJournalStorage, masked, open_storage

ROOT = Path(__file__).resolve().parents[3]
TINY = ["--size", "32", "--synthetic-n", "200", "--max-samples", "80", "--val-subset", "40", "--no-progress",
        "--trials", "1", "--epochs", "1"]
PLANTED = "PLANTED-S3CRET-d41d8"


def test_masked_hides_the_password_and_keeps_the_rest():
    assert masked(f"postgresql+psycopg://alice:{PLANTED}@db.example:5432/gz") == "postgresql+psycopg://alice:***@db.example:5432/gz"
    assert PLANTED not in masked(f"weird+://alice:{PLANTED}@host/x")
    assert masked("sqlite:///results/study.db") == "sqlite:///results/study.db"
    assert masked("journal:/shared/s.journal") == "journal:/shared/s.journal"


@pytest.mark.parametrize("url, words", [
    ("notaurl", "is not a storage URL"),
    ("foo://host/db", "unknown scheme 'foo'"),
    (f"mysql://u:{PLANTED}@127.0.0.1:1/db", "driver is not installed"),
    (f"postgresql+psycopg://alice:{PLANTED}@127.0.0.1:1/db", "cannot use the storage server 127.0.0.1:1"),
    ("sqlite://", "in-memory SQLite"),
])
def test_every_storage_mistake_is_one_line_exit_2_before_any_data(tmp_path, capsys, url, words):
    results = tmp_path / "r"
    code = main(["synth", "--storage", url, "--results", str(results), *TINY])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and words in err[0], err
    assert PLANTED not in err[0]
    assert not (results / "cache").exists()  # nothing decoded, nothing written


def test_unwritable_places_and_a_text_file_posing_as_a_journal_are_one_line(tmp_path, capsys):
    if os.geteuid() == 0:
        pytest.skip("root writes anywhere: a read-only folder is not read-only for this test")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    for url in (f"sqlite:///{locked / 'sub' / 's.db'}", f"journal:{locked / 's.journal'}"):
        assert main(["synth", "--storage", url, "--results", str(tmp_path / "r"), *TINY]) == 2
        assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_a_text_file_named_as_a_journal_is_one_line(tmp_path, capsys):
    fake = tmp_path / "notes.journal"
    fake.write_text("these are my notes, not an Optuna journal\n")
    assert main(["synth", "--storage", f"journal:{fake}", "--results", str(tmp_path / "r"), *TINY]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not an Optuna journal file" in err[0]


def test_the_storage_url_can_come_from_the_environment(tmp_path, monkeypatch, capsys):
    journal = tmp_path / "s.journal"
    monkeypatch.setenv("GALAXY_SYNTH_STORAGE", f"journal:{journal}")
    assert main(["synth", "--results", str(tmp_path / "r"), *TINY]) == 0
    assert journal.is_file() and not (tmp_path / "r" / "study.db").exists()
    assert main(["rank", "--results", str(tmp_path / "r")]) == 0  # the later commands find it the same way


def test_journal_storage_has_heartbeats_that_fail_a_silent_trial_and_queue_its_retry(tmp_path):
    storage = open_storage(f"journal:{tmp_path / 'h.journal'}", heartbeat_interval=1, grace_period=1)
    assert isinstance(storage, HeartbeatJournalStorage)
    study = optuna.create_study(study_name="h", storage=storage)
    dead = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    storage.record_heartbeat(dead._trial_id)
    import time

    time.sleep(1.5)  # then silence: its worker "died"
    optuna.storages.fail_stale_trials(study)
    trials = study.get_trials()
    assert trials[dead.number].state == optuna.trial.TrialState.FAIL
    retry = [t for t in trials if t.system_attrs.get("failed_trial") == dead.number]
    assert len(retry) == 1 and retry[0].state == optuna.trial.TrialState.WAITING and retry[0].params == dead.params


def test_a_journal_retry_is_not_stale_before_its_own_first_heartbeat(tmp_path):
    """The retry carries the dead trial's old beat in its system attrs; once popped it is fresh."""
    storage = open_storage(f"journal:{tmp_path / 'r.journal'}", heartbeat_interval=1, grace_period=1)
    study = optuna.create_study(study_name="r", storage=storage)
    dead = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    storage.record_heartbeat(dead._trial_id)
    import time

    time.sleep(1.5)
    optuna.storages.fail_stale_trials(study)  # dead → FAIL, its retry WAITING with the dead trial's beat
    retry = study.ask()  # popped by a live worker, whose heartbeat thread has not beaten yet
    assert storage.get_trial(retry._trial_id).system_attrs.get("failed_trial") == dead.number
    assert storage._get_stale_trial_ids(study._study_id) == []


def test_ground_truth_lives_beside_the_journal_and_a_study_runs_end_to_end_on_it(tmp_path):
    url = f"journal:{tmp_path / 'e2e.journal'}"
    tiny = ["--results", str(tmp_path / "r"), "--storage", url, "--no-progress"]
    assert main(["synth", *TINY[:-4], "--trials", "6", "--epochs", "1", *tiny[:2], "--storage", url]) == 0
    assert main(["correlate", "--ground-truth", "6", "--full-epochs", "1", *tiny]) == 0
    assert (tmp_path / "e2e.journal.ground-truth.jsonl").stat().st_size > 0
    assert main(["export", "--top", "1", "--full-epochs", "1", *tiny]) == 0
    assert main(["report", *tiny[:-1]]) == 0
    from synthesis.full_training.store import open_ground_truth

    assert len(open_ground_truth(url).table("galaxy-synth")) == 6  # export reused correlate's training of its pick


@pytest.mark.slow
def test_a_planted_password_appears_nowhere_a_study_writes_or_prints(tmp_path, postgres_url):
    url = postgres_url.replace("galaxy@", f"galaxy:{PLANTED}@")  # the server trusts loopback; the password is only planted
    results = tmp_path / "r"
    env = {**{k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}, "PYTHONPATH": str(ROOT)}
    base = [sys.executable, "-m", "galaxy_synth"]
    common = ["--results", str(results), "--storage", url, "--study", "secret"]
    outputs = []
    for args in (["synth", *TINY[:-4], "--trials", "6", "--epochs", "1", "--workers", "2", "-v"],
                 ["correlate", "--ground-truth", "6", "--full-epochs", "1", "--no-progress"],
                 ["export", "--top", "1", "--full-epochs", "1", "--no-progress"], ["report"], ["rank"]):
        verbose = ["-v"] if "-v" in args else []
        cmd = base + verbose + [a for a in args if a != "-v"] + common
        res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, res.stderr[-2000:]
        outputs.append(res.stdout + res.stderr)
    assert "galaxy:***@" in outputs[0]  # synth names the storage, masked
    assert "galaxy:***@" in (results / "studies" / "secret" / "report" / "index.html").read_text()
    assert not any(PLANTED in o for o in outputs)
    for path in results.rglob("*"):
        if path.is_file():
            assert PLANTED.encode() not in path.read_bytes(), path
    study = optuna.load_study(study_name="secret", storage=url)
    assert PLANTED not in repr(study.user_attrs) + repr([t.user_attrs for t in study.trials])


def test_processes_creating_one_new_sqlite_file_at_once_all_open_it(tmp_path):
    code = ("import sys; from synthesis.search.storage import open_storage; import optuna; "
            "optuna.create_study(study_name=sys.argv[2], storage=open_storage(sys.argv[1]))")
    for round_ in range(4):  # the schema race is timing-dependent: several fresh files
        url = f"sqlite:///{tmp_path / f'race{round_}.db'}"
        procs = [subprocess.Popen([sys.executable, "-c", code, url, f"s{i}"], cwd=ROOT, stderr=subprocess.PIPE, text=True,
                                  env={**os.environ, "PYTHONPATH": str(ROOT)}) for i in range(3)]
        errors = [p.communicate(timeout=120)[1] for p in procs]
        assert [p.returncode for p in procs] == [0, 0, 0], errors
