"""Full trainings of a study, several at once: one single-threaded process per allotted core.

``correlate`` and ``export`` train independent models (one per architecture and seed). On a CPU
they go faster as N processes of one thread than as one process of N threads (the networks are
small; docs/BENCHMARKS.md §17), and a single thread never waits at a barrier for a peer that
another job pushed off its core. The pool is the standard library's ``ProcessPoolExecutor``
(spawned processes: a fork of a process with an OpenMP thread pool can deadlock): no scheduler of
ours. Every process stores its result in the ground-truth store the moment it finishes
(:func:`synthesis.full_training.rule.stored_or_trained`), so a kill loses at most the models in
training, and a rerun trains only what is missing.
"""

from __future__ import annotations

import multiprocessing
import sys
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from typing import Any, Callable, Sequence

from synthesis import GalaxySynthError
from synthesis.full_training.rule import stored_or_trained
from synthesis.full_training.settings import FullTrainingJob, FullTrainingSettings
from synthesis.full_training.store import GroundTruthStore, open_ground_truth
from synthesis.hardware import ExecutionPlan, allotted_cores, execution_plan, set_torch_threads
from synthesis.search import OpenedStudy, reopen_study


def full_training_plan(device_type: str, jobs: int) -> ExecutionPlan:
    """Processes × threads for ``jobs`` full trainings (each long enough to be worth its own process)."""
    return execution_plan(device_type, allotted_cores(), jobs=jobs, min_jobs_per_worker=1)


# -- in the worker processes ------------------------------------------------------------------
_OPENED: dict[tuple[str, str], Any] = {}


def _start_worker(threads: int) -> None:
    set_torch_threads(threads)


def _train(settings: FullTrainingSettings, job: FullTrainingJob) -> dict[str, Any]:
    """One job in a pool process; ``settings`` say where to reopen the study (its URL travels pickled, in memory,
    never on a command line)."""
    key = (settings.storage_url, settings.study_name)
    if key not in _OPENED:  # one reopen per process, however many models it trains
        opened = reopen_study(settings.storage_url, settings.study_name, settings.results_dir, progress=False,
                              device=settings.device)
        trials = {t.number: t for t in opened.study.get_trials(deepcopy=False)}
        _OPENED[key] = (opened.prepared(), trials, open_ground_truth(settings.storage_url))
    prep, trials, store = _OPENED[key]
    # no per-epoch bars from the pool's processes: the parent's bar counts their models
    record, _, trained = stored_or_trained(store, replace(settings, progress=False), job, trials[job.trial].user_attrs, prep)
    return _summary(job, record, trained)


def _summary(job: FullTrainingJob, record: Any, trained: bool) -> dict[str, Any]:
    return {"trial": job.trial, "seed": job.seed, "accuracy": record.accuracy, "wall_seconds": record.wall_seconds,
            "trained_now": trained}


# -- in the parent ----------------------------------------------------------------------------
def _quiet_resource_tracker() -> None:
    """A killed worker leaves the pool's semaphores to multiprocessing's resource tracker, which warns
    about them at exit; after the one-line error that is noise. The tracker (a process of its own)
    takes this interpreter's -W options when it starts."""
    rule = "ignore:resource_tracker:UserWarning"
    if rule not in sys.warnoptions:
        sys.warnoptions.append(rule)


def train_all(settings: FullTrainingSettings, jobs: Sequence[FullTrainingJob], plan: ExecutionPlan,
              run_here: Callable[[FullTrainingJob], dict[str, Any]],
              on_done: Callable[[dict[str, Any]], None] = lambda result: None) -> None:
    """Run every job: in this process (``run_here``) for a one-process plan, else in a pool of ``plan.workers``.

    ``on_done`` sees each result as it arrives (a progress bar). A worker that dies (killed, out
    of memory) stops the run with one line: what finished is stored, a rerun does the rest.
    """
    if plan.workers <= 1 or len(jobs) <= 1:
        set_torch_threads(plan.threads)
        for job in jobs:
            on_done(run_here(job))
        return
    context = multiprocessing.get_context("spawn")
    _quiet_resource_tracker()
    finished = 0
    with ProcessPoolExecutor(plan.workers, mp_context=context, initializer=_start_worker,
                             initargs=(plan.threads,)) as pool:
        pending = {pool.submit(_train, settings, job) for job in jobs}
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    on_done(future.result())
                    finished += 1
        except BrokenProcessPool:
            raise GalaxySynthError(f"a full-training process died (killed, or out of memory) after {finished} of "
                                   f"{len(jobs)} models: every finished model is stored; run the same command again "
                                   f"to train the rest") from None
        except KeyboardInterrupt:
            for future in pending:
                future.cancel()
            raise


def train_jobs(opened: OpenedStudy, settings: FullTrainingSettings, store: GroundTruthStore, todo: list[FullTrainingJob],
               total: int, desc: str) -> list[dict[str, Any]]:
    """Train (or reuse) every job of the study ``opened`` under ``settings``, with a bar over the ``total`` models
    of which ``todo`` are left; one result per job (``trial``, ``seed``, ``accuracy``, ``wall_seconds``,
    ``trained_now``)."""
    from tqdm.auto import tqdm

    trials = {t.number: t for t in opened.study.get_trials(deepcopy=False)}
    prep = opened.prepared()
    plan = full_training_plan(opened.device.type, len(todo))
    bar = tqdm(total=total, initial=total - len(todo), desc=f"{desc} ({plan.workers} at once)" if plan.workers > 1 else desc,
               unit="model", disable=not settings.progress)

    def here(job: FullTrainingJob) -> dict[str, Any]:
        record, _, trained = stored_or_trained(store, settings, job, trials[job.trial].user_attrs, prep)
        return _summary(job, record, trained)

    results: list[dict[str, Any]] = []

    def done(result: dict[str, Any]) -> None:
        results.append(result)
        bar.update(1)
        bar.set_postfix_str(f"trial {result['trial']}: acc {result['accuracy']:.3f} in {result['wall_seconds']:.0f} s")

    try:
        train_all(settings, todo, plan, here, done)
    finally:
        bar.close()
    return results
