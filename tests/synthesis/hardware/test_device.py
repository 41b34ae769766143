"""Device and precision choice: what auto picks, and one line for what this machine cannot do."""

import pytest
import torch

import synthesis.hardware.device as device
from synthesis.errors import GalaxySynthError

CPU = torch.device("cpu")


def test_auto_on_a_cpu_picks_bf16_only_where_it_is_native_and_measured_faster(monkeypatch):
    monkeypatch.setattr(device, "cpu_bf16_flags", lambda: [])
    assert device.resolve_precision("auto", CPU).name == "fp32"
    monkeypatch.setattr(device, "cpu_bf16_flags", lambda: ["avx512_bf16"])
    monkeypatch.setattr(device, "measured_cpu_bf16_speedup", lambda cache_dir=None: 1.6)
    choice = device.resolve_precision("auto", CPU)
    assert choice.name == "bf16" and "1.60× faster" in choice.reason
    monkeypatch.setattr(device, "measured_cpu_bf16_speedup", lambda cache_dir=None: 0.95)
    choice = device.resolve_precision("auto", CPU)
    assert choice.name == "fp32" and "only 0.95×" in choice.reason


@pytest.mark.parametrize("asked, message", [("fp16", "needs a GPU"), ("int8", "choose from")])
def test_impossible_precisions_are_one_line(asked, message):
    with pytest.raises(GalaxySynthError, match=message):
        device.resolve_precision(asked, CPU)


def test_the_measurement_is_cached_and_reused(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(device, "_time_training_steps", lambda repeats: calls.append(1) or {"fp32": 2.0, "bf16": 1.0, "ratio": 2.0})
    assert device.measured_cpu_bf16_speedup(tmp_path) == 2.0
    assert device.measured_cpu_bf16_speedup(tmp_path) == 2.0 and len(calls) == 1
    assert list(tmp_path.glob("precision-*.json"))


def test_the_step_timer_restores_the_thread_count():
    before = torch.get_num_threads()
    times = device._time_training_steps(2)
    assert times["fp32"] > 0 and times["bf16"] > 0 and torch.get_num_threads() == before


def test_devices_that_are_not_here_are_one_line():
    if not torch.cuda.is_available():
        with pytest.raises(GalaxySynthError, match="CUDA is not available"):
            device.resolve_device("cuda:0")
    with pytest.raises(GalaxySynthError, match="not a device"):
        device.resolve_device("gpu please")
    assert device.resolve_device("cpu") == CPU


def test_the_allocator_is_tuned_once_on_linux_glibc():
    import platform

    if platform.system() != "Linux":
        pytest.skip("glibc's mallopt exists on Linux only")
    assert device.tune_allocator() is True and device.tune_allocator() is True  # idempotent
