"""Kill a study process in the middle of a trial, without racing the trial's own completion."""

import os
import signal

import optuna
from optuna.trial import TrialState


def kill_if_mid_trial(pid: int, study: optuna.Study, number: int) -> bool:
    """SIGKILL ``pid`` only if trial ``number`` is still training; whether it was killed.

    Tiny test trials finish within one poll: killing on a stale snapshot can hit the process after
    the trial completed (so some other trial, or none, dies). Freezing the process first (SIGSTOP)
    makes the re-read state final until the kill.
    """
    try:
        os.kill(pid, signal.SIGSTOP)
    except ProcessLookupError:  # it has already finished
        return False
    now = next(t for t in study.get_trials(deepcopy=False) if t.number == number)
    if now.state == TrialState.RUNNING and "history" not in now.user_attrs:
        os.kill(pid, signal.SIGKILL)
        return True
    os.kill(pid, signal.SIGCONT)
    return False
