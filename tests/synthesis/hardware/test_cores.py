"""How many cores a process may use (affinity, cgroup quota, the user's pinning) and how a study spends them."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from synthesis.hardware.cores import (
    CoreAllotment,
    allotted_cores,
    cgroup_cpu_quota,
    execution_plan,
)

ROOT = Path(__file__).resolve().parents[3]


def _cgroup_v2(tmp_path: Path, cpu_max: str, nested: str = "job") -> tuple[Path, Path]:
    root = tmp_path / "cgroup"
    (root / nested).mkdir(parents=True)
    (root / nested / "cpu.max").write_text(cpu_max + "\n")
    proc = tmp_path / "proc_cgroup"
    proc.write_text(f"0::/{nested}\n")
    return root, proc


def _cgroup_v1(tmp_path: Path, quota: int, period: int = 100000) -> tuple[Path, Path]:
    root = tmp_path / "cgroup"
    folder = root / "cpu,cpuacct" / "slurm" / "job_7"
    folder.mkdir(parents=True)
    (folder / "cpu.cfs_quota_us").write_text(f"{quota}\n")
    (folder / "cpu.cfs_period_us").write_text(f"{period}\n")
    proc = tmp_path / "proc_cgroup"
    proc.write_text("4:cpu,cpuacct:/slurm/job_7\n3:memory:/slurm/job_7\n")
    return root, proc


def test_affinity_limits_the_cores():
    a = allotted_cores(environ={}, affinity={0}, proc_cgroup="/nonexistent")
    assert a.cores == 1 and a.limits == {"affinity": 1}
    if (os.cpu_count() or 1) > 1:
        assert a.describe() == f"1 of {os.cpu_count()} cores allotted (affinity)"


def test_cgroup_v2_quota_limits_the_cores_and_max_means_none(tmp_path):
    root, proc = _cgroup_v2(tmp_path, "150000 100000")
    assert cgroup_cpu_quota(root, proc) == 1.5
    a = allotted_cores(environ={}, affinity=set(range(64)), cgroup_root=root, proc_cgroup=proc)
    assert a.cores == 1 and a.limits["cgroup quota"] == 1  # 1.5 cores of quota: one thread runs unthrottled
    root2, proc2 = _cgroup_v2(tmp_path / "b", "max 100000")
    assert cgroup_cpu_quota(root2, proc2) is None


def test_a_parent_cgroups_quota_counts_too(tmp_path):
    root, proc = _cgroup_v2(tmp_path, "max 100000", nested="slice/job")
    (root / "slice" / "cpu.max").write_text("400000 100000\n")
    assert cgroup_cpu_quota(root, proc) == 4.0


def test_cgroup_v1_quota_as_slurm_sets_it(tmp_path):
    root, proc = _cgroup_v1(tmp_path, quota=300000)
    assert cgroup_cpu_quota(root, proc) == 3.0
    root2, proc2 = _cgroup_v1(tmp_path / "b", quota=-1)
    assert cgroup_cpu_quota(root2, proc2) is None


def test_the_users_pinning_wins_when_smaller_and_nonsense_is_ignored(tmp_path):
    many = set(range(64))
    assert allotted_cores(environ={"OMP_NUM_THREADS": "2"}, affinity=many, proc_cgroup="/x").cores == min(2, os.cpu_count() or 1)
    assert allotted_cores(environ={"SLURM_CPUS_PER_TASK": "1"}, affinity=many, proc_cgroup="/x").cores == 1
    a = allotted_cores(environ={"OMP_NUM_THREADS": "", "SLURM_CPUS_PER_TASK": "zero"}, affinity=many, proc_cgroup="/x")
    assert a.cores == os.cpu_count() and a.limits == {"affinity": 64}


def test_smallest_source_wins(tmp_path):
    root, proc = _cgroup_v2(tmp_path, "200000 100000")
    a = allotted_cores(environ={"OMP_NUM_THREADS": "3"}, affinity={0, 1, 2, 3}, cgroup_root=root, proc_cgroup=proc)
    assert a.cores == min(2, os.cpu_count() or 1)


def test_cpu_plan_is_single_threaded_processes_and_fewer_for_little_work():
    four = CoreAllotment(4, 64, {"affinity": 4})
    plan = execution_plan("cpu", four, jobs=20)
    assert (plan.workers, plan.threads) == (4, 1)
    assert (execution_plan("cpu", four, jobs=5).workers, execution_plan("cpu", four, jobs=5).threads) == (1, 1)
    assert execution_plan("cpu", four, jobs=3, min_jobs_per_worker=1).workers == 3  # full trainings: one each
    asked = execution_plan("cpu", four, workers=2)
    assert (asked.workers, asked.threads) == (2, 2)
    seq = execution_plan("cpu", four, parallel=False)
    assert (seq.workers, seq.threads) == (1, 4)
    gpu = execution_plan("cuda", four, jobs=20)
    assert gpu.workers == 2 and gpu.threads == 2 and "estimate" in gpu.reason


def _synth_under_taskset(tmp_path, extra_env=None):
    # The CLI in a child under taskset, printing the torch thread count it ran with.
    code = "import torch, sys; from galaxy_synth.cli import main; rc = main(sys.argv[1:]); " \
           "print('torch threads', torch.get_num_threads(), file=sys.stderr); sys.exit(rc)"
    cmd = ["taskset", "-c", "0", sys.executable, "-c", code, "synth", "--trials", "1", "--epochs", "1",
           "--size", "32", "--synthetic-n", "200", "--max-samples", "80", "--val-subset", "40", "--no-progress",
           "--results", str(tmp_path / "r")]
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "SLURM_CPUS_PER_TASK")}
    return subprocess.run(cmd, cwd=ROOT, env={**env, "PYTHONPATH": str(ROOT), **(extra_env or {})},
                          capture_output=True, text=True, timeout=300)


@pytest.mark.skipif(shutil.which("taskset") is None or (os.cpu_count() or 1) < 2, reason="needs taskset and 2+ cores")
def test_the_cli_under_taskset_uses_one_thread_and_says_so(tmp_path):
    res = _synth_under_taskset(tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    assert f"1 of {os.cpu_count()} cores allotted (affinity)" in res.stderr
    assert "torch threads 1" in res.stderr
