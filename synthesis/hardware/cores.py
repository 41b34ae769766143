"""How many cores this process may use, and how a study spends them.

``os.cpu_count()`` is the number of cores of the *machine*. Under ``taskset``, a container CPU
quota or a SLURM allocation of 4 cores on a 64-core node, starting 64 torch threads makes every
thread wait at OpenMP barriers for peers that are descheduled (docs/BENCHMARKS.md §17 measures
5.8× lost on one core). :func:`allotted_cores` is the one answer galaxy-synth uses wherever it
picks a thread or process count: trials, workers, the decode pool, full training, the benchmarks.
Sources, smallest wins:

* CPU affinity (``os.sched_getaffinity``: taskset, cpusets, SLURM's binding);
* the cgroup CPU quota (cgroup v2 ``cpu.max``, v1 ``cpu.cfs_quota_us``/``cpu.cfs_period_us``), of
  this process's cgroup and its parents (containers, systemd slices, SLURM's cgroup plugin);
* what the user pinned: ``OMP_NUM_THREADS``, ``SLURM_CPUS_PER_TASK``.

:func:`execution_plan` turns the allotment into N worker processes × T torch threads. On a CPU the
default is one single-threaded process per allotted core: the small networks of a search train
more trials per CPU-second on one thread, and one thread never waits at a barrier for a peer that
another job pushed off its core (§17: the rule and its measurement). OpenMP's passive waiting,
the other cure, cost 25% of the wall time of a quiet 2-thread study and is not used.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

PINNING_VARIABLES = ("OMP_NUM_THREADS", "SLURM_CPUS_PER_TASK")


@dataclass(frozen=True)
class CoreAllotment:
    """The cores this process may use (``cores``), of the machine's ``machine``, and what limited them."""

    cores: int
    machine: int
    limits: dict[str, int] = field(default_factory=dict)  # every source that set a limit, e.g. {"affinity": 4}

    def describe(self) -> str:
        """``4 of 64 cores allotted (affinity)`` or ``2 of 2 cores``."""
        binding = sorted(k for k, v in self.limits.items() if v == self.cores and self.cores < self.machine)
        plural = "" if self.machine == 1 else "s"
        if self.cores == self.machine and not binding:
            return f"{self.cores} of {self.machine} core{plural}"
        return f"{self.cores} of {self.machine} core{plural} allotted" + (f" ({', '.join(binding)})" if binding else "")


def allotted_cores(environ: Mapping[str, str] | None = None, affinity: set[int] | None = None,
                   cgroup_root: str | os.PathLike = "/sys/fs/cgroup",
                   proc_cgroup: str | os.PathLike = "/proc/self/cgroup") -> CoreAllotment:
    """The cores this process may use: affinity, cgroup quota and the user's pinning, smallest wins.

    The arguments exist for tests (fake environments, affinities and cgroup trees); by default
    they are this process's own.
    """
    environ = os.environ if environ is None else environ
    machine = max(1, os.cpu_count() or 1)
    limits: dict[str, int] = {}
    if affinity is None and hasattr(os, "sched_getaffinity"):
        affinity = os.sched_getaffinity(0)
    if affinity:
        limits["affinity"] = len(affinity)
    quota = cgroup_cpu_quota(Path(cgroup_root), Path(proc_cgroup))
    if quota is not None:
        limits["cgroup quota"] = max(1, math.floor(quota))  # 1.5 cores of quota run 1 thread without throttling
    for name in PINNING_VARIABLES:
        value = _positive_int(environ.get(name))
        if value is not None:
            limits[name] = value
    cores = min([machine, *limits.values()])
    return CoreAllotment(max(1, cores), machine, limits)


def cgroup_cpu_quota(root: Path, proc_cgroup: Path) -> float | None:
    """Cores of CPU quota for this process's cgroup (the tightest of it and its parents), None if unlimited."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    found: list[float] = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":  # cgroup v2 (unified): cpu.max = "QUOTA PERIOD" or "max PERIOD"
            for folder in _self_and_parents(root, path) + _self_and_parents(root / "unified", path):
                found += _read_v2(folder / "cpu.max")
        elif "cpu" in controllers.split(","):  # cgroup v1: the cpu controller's own mount
            for mount in (root / controllers, root / "cpu", root / "cpu,cpuacct"):
                for folder in _self_and_parents(mount, path):
                    found += _read_v1(folder)
    return min(found) if found else None


def _self_and_parents(mount: Path, path: str) -> list[Path]:
    """The cgroup's folder and its parents under ``mount`` (in a container the mount's root is the cgroup)."""
    parts = [p for p in path.strip("/").split("/") if p]
    folders = [mount.joinpath(*parts[:k]) for k in range(len(parts), -1, -1)]
    return [f for f in dict.fromkeys(folders) if f.is_dir()]


def _read_v2(path: Path) -> list[float]:
    try:
        quota, period = path.read_text().split()[:2]
    except (OSError, ValueError):
        return []
    if quota == "max" or float(period) <= 0:
        return []
    return [float(quota) / float(period)]


def _read_v1(folder: Path) -> list[float]:
    try:
        quota = float((folder / "cpu.cfs_quota_us").read_text())
        period = float((folder / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return []
    return [quota / period] if quota > 0 and period > 0 else []


def _positive_int(text: str | None) -> int | None:
    try:
        value = int(str(text).strip())
    except (TypeError, ValueError):
        return None
    return value if value >= 1 else None


# Estimated, not measured (no GPU was lent to any session): a small network leaves a GPU idle
# between kernels, so two processes interleave their work on one device.
GPU_WORKERS_PER_DEVICE = 2


# A worker process costs a few seconds to start (torch, the study, the data): below this many trials
# per worker, fewer workers finish first (§17).
MIN_TRIALS_PER_WORKER = 3


@dataclass(frozen=True)
class ExecutionPlan:
    """N worker processes × T torch threads each, and why."""

    workers: int
    threads: int
    reason: str

    def describe(self) -> str:
        w = f"{self.workers} process{'es' if self.workers != 1 else ''}"
        return f"{w} × {self.threads} thread{'s' if self.threads != 1 else ''} ({self.reason})"


def execution_plan(device_type: str, allotment: CoreAllotment, workers: int | None = None, parallel: bool = True,
                   jobs: int | None = None, min_jobs_per_worker: int = MIN_TRIALS_PER_WORKER) -> ExecutionPlan:
    """How to run ``jobs`` independent pieces of work (trials, full trainings) on these cores.

    ``workers`` given: that many processes, the cores split between them. Otherwise on a CPU one
    single-threaded process per allotted core, fewer where there are fewer than
    ``min_jobs_per_worker`` jobs per process (the measured rule, docs/BENCHMARKS.md §17); on a GPU
    :data:`GPU_WORKERS_PER_DEVICE` processes (an estimate). ``parallel`` False (work that is one
    sequence, e.g. progressive growth): one process with every allotted core as threads.
    """
    cores = allotment.cores
    if workers is not None:
        return ExecutionPlan(workers, max(1, cores // workers), "asked for")
    if not parallel:
        return ExecutionPlan(1, cores, "one sequence of work: the allotted cores as threads")
    fits = cores if jobs is None else max(1, min(cores, jobs // max(1, min_jobs_per_worker)))
    if device_type == "cpu":
        # One thread each, even as a single process: a thread never waits at a barrier for a peer that
        # another job pushed off its core (two threads beside two busy jobs: 2.4-6.3x slower, one: 1.8x).
        reason = "CPU: one single-threaded process per allotted core, the faster plan measured (§17)"
        if fits < cores:
            reason = f"CPU: single-threaded processes, {fits} for {jobs} piece(s) of work (§17)"
        return ExecutionPlan(fits, 1, reason)
    n = min(GPU_WORKERS_PER_DEVICE, fits)
    return ExecutionPlan(n, max(1, cores // n), f"{device_type.upper()}: {n} process(es) share the device (an estimate)")


def set_torch_threads(threads: int) -> None:
    """Intra-op threads of this process (the inter-op pool is left alone: small networks do not use it)."""
    import torch

    torch.set_num_threads(max(1, int(threads)))


def cpu_bf16_flags() -> list[str]:
    """The processor's native bf16 instruction sets (Linux /proc/cpuinfo; empty elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return [f for f in ("avx512_bf16", "amx_bf16") if f in flags]
