"""Test-only hook, kept out of the product: loaded by Python at start-up in the processes a kill test starts.

``tests/_kill.py`` puts this folder first on ``PYTHONPATH`` together with ``GALAXY_SYNTH_TEST_HOLD=DIR:N``.
Then the first trial to reach training (past the size caps, about to train) once the study holds N
finished trials writes ``DIR/trial{number}.pid`` and waits (up to 5 minutes), so the test can kill it
mid-trial without racing the trial's length. Nothing here runs without that variable.
"""

import os

HOLD_ENV = "GALAXY_SYNTH_TEST_HOLD"


def _hold_if_asked(trial) -> None:
    import time
    from pathlib import Path

    from synthesis.search.trials import finished

    folder, _, complete = os.environ[HOLD_ENV].rpartition(":")
    # Finished, not just COMPLETE: with promotion most trials end stopped at a budget (PRUNED), and a
    # hold that waits for COMPLETE ones may never come before the target is reached.
    if sum(finished(t) for t in trial.study.get_trials(deepcopy=False)) < int(complete):
        return
    try:  # exactly one trial holds, whichever worker reaches this first
        os.close(os.open(Path(folder) / "claimed", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return
    marker = Path(folder) / f"trial{trial.number}.pid"
    marker.write_text(str(os.getpid()))
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and marker.exists():
        time.sleep(0.1)


if os.environ.get(HOLD_ENV):
    from synthesis.search.objective import Objective

    _train_and_score = Objective._train_and_score

    def _held(self, trial, *args, **kwargs):
        _hold_if_asked(trial)
        return _train_and_score(self, trial, *args, **kwargs)

    Objective._train_and_score = _held
