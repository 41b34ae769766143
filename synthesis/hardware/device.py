"""Where and in what precision networks run: device and precision choice, and the CPU allocator.

* :func:`resolve_device` turns ``auto``/``cpu``/``cuda[:N]``/``mps`` into a ``torch.device``, or
  fails with one line when the device is not there (before any data is loaded or trained).
* :func:`resolve_precision` turns ``auto``/``fp32``/``bf16``/``fp16`` into the precision a run
  uses, with the reason. On CUDA, ``auto`` is bf16 autocast where the GPU supports it, else fp16
  with a gradient scaler. On a CPU, bf16 is allowed only where the processor has bf16
  instructions (``avx512_bf16`` or AMX), and ``auto`` picks it only where a short measurement on
  this machine says training steps are faster in bf16 (cached per processor and torch version).
* :func:`tune_allocator` keeps glibc from returning activation buffers to the kernel after every
  batch (docs/BENCHMARKS.md measures the system time this saves).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import hashlib
import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from synthesis import Precision, names
from synthesis import GalaxySynthError
from synthesis.hardware.cores import cpu_bf16_flags  # noqa: F401 — read through this module (tests patch it here)

PRECISIONS = names(Precision)


DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


# auto picks bf16 on a CPU only if training steps measured at least this much faster.
CPU_BF16_MIN_SPEEDUP = 1.1


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then CPU; an explicit device must exist."""
    name = (name or "auto").strip().lower()
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if mps else torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise GalaxySynthError(f"--device {name!r} is not a device (auto, cpu, cuda, cuda:N or mps)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            why = "this torch has no CUDA support" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise GalaxySynthError(f"--device {name}: CUDA is not available here ({why}); use --device cpu or auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise GalaxySynthError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) here")
    elif device.type == "mps":
        if not mps:
            raise GalaxySynthError(f"--device {name}: Apple MPS is not available here (it needs macOS on Apple silicon)")
    elif device.type != "cpu":
        raise GalaxySynthError(f"--device {name!r}: galaxy-synth runs on cpu, cuda or mps")
    return device


@dataclass(frozen=True)
class PrecisionChoice:
    name: str  # "fp32" | "bf16" | "fp16"
    reason: str


def resolve_precision(requested: str, device: torch.device, cache_dir: Path | None = None) -> PrecisionChoice:
    """The precision to train in, and why; an impossible request is one line (GalaxySynthError)."""
    requested = (requested or "auto").lower()
    if requested not in PRECISIONS:
        raise GalaxySynthError(f"--precision {requested!r}: choose from {', '.join(PRECISIONS)}")
    kind = device.type
    if requested == "fp32":
        return PrecisionChoice("fp32", "asked for")
    if kind == "cuda":
        bf16_ok = torch.cuda.is_bf16_supported()
        if requested == "bf16" and not bf16_ok:
            raise GalaxySynthError(f"--precision bf16: {torch.cuda.get_device_name(device)} has no bf16 support; use fp16 or fp32")
        if requested in ("bf16", "fp16"):
            return PrecisionChoice(requested, "asked for")
        return PrecisionChoice("bf16", "CUDA GPU with bf16") if bf16_ok else PrecisionChoice("fp16", "CUDA GPU without bf16: fp16 with a gradient scaler")
    if kind == "mps":
        if requested == "auto":
            return PrecisionChoice("fp32", "Apple MPS: fp32 (autocast there is not measured)")
        if requested == "bf16":
            raise GalaxySynthError("--precision bf16 is not supported on Apple MPS; use fp16 or fp32")
        return PrecisionChoice("fp16", "asked for")
    # CPU
    if requested == "fp16":
        raise GalaxySynthError("--precision fp16 needs a GPU (CPU fp16 training is slow and unscaled); use bf16 or fp32")
    flags = cpu_bf16_flags()
    if requested == "bf16":
        if not flags:
            raise GalaxySynthError("--precision bf16: this CPU has no bf16 instructions (avx512_bf16 or AMX); use fp32")
        return PrecisionChoice("bf16", f"asked for ({', '.join(flags)})")
    if not flags:
        return PrecisionChoice("fp32", "CPU without bf16 instructions")
    speedup = measured_cpu_bf16_speedup(cache_dir)
    if speedup >= CPU_BF16_MIN_SPEEDUP:
        return PrecisionChoice("bf16", f"CPU with {', '.join(flags)}: bf16 training steps measured {speedup:.2f}× faster here")
    return PrecisionChoice("fp32", f"CPU with {', '.join(flags)}, but bf16 measured only {speedup:.2f}× here")


def measured_cpu_bf16_speedup(cache_dir: Path | None = None, repeats: int = 9) -> float:
    """fp32 time / bf16 time of a small convolutional training step on this CPU (cached)."""
    key = machine_key("1 thread")
    cache = Path(cache_dir) / f"precision-{key}.json" if cache_dir else None
    if cache is not None and cache.is_file():
        try:
            return float(json.loads(cache.read_text())["speedup"])
        except (OSError, ValueError, KeyError):
            pass
    times = _time_training_steps(repeats)
    speedup = times["ratio"]
    if cache is not None:
        from galaxy_common import atomic_write_text

        try:
            atomic_write_text(cache, json.dumps({"speedup": speedup, "seconds": times, "torch": torch.__version__}))
        except OSError:
            pass  # a cache we cannot write costs a second per run, nothing more
    return speedup


def machine_key(what: str) -> str:
    """A short id of this processor and torch version, and of ``what`` is measured on them: the name of a per-machine
    cache file of measurements (a cache copied to another machine, or kept across a torch upgrade, is not read)."""
    return hashlib.sha256(f"{platform.processor()}|{_cpu_model()}|{torch.__version__}|{what}".encode()).hexdigest()[:16]


def _cpu_model() -> str:
    try:
        return next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name")), "")
    except OSError:
        return ""


def _time_training_steps(repeats: int) -> dict[str, float]:
    """Median seconds of one training step of a small conv stack at 32 px, in fp32 and in bf16.

    The two precisions alternate step by step, so whatever else loads the machine slows both alike
    and the ratio stays honest; on one thread, because a parallel step on a busy machine stalls at
    every barrier its preempted twin has not reached (measured: 10× slower steps, ratios all over).
    """
    from torch import nn

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _alternating_steps(repeats, nn)
    finally:
        torch.set_num_threads(threads)


def _alternating_steps(repeats: int, nn) -> dict[str, float]:
    g = torch.Generator(device="cpu").manual_seed(0)
    with torch.device("cpu"):
        net = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
                            nn.Conv2d(32, 64, 3, padding=1, stride=2), nn.BatchNorm2d(64), nn.ReLU(),
                            nn.Conv2d(64, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
                            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 4)).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    x = torch.randn(64, 3, 32, 32, generator=g, device="cpu").contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 4, (64,), generator=g, device="cpu")
    times: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for i in range(repeats + 4):
        for precision in ("fp32", "bf16"):
            t0 = time.perf_counter()
            with autocast(torch.device("cpu"), precision):
                loss = nn.functional.cross_entropy(net(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if i >= 4:  # the first steps build oneDNN kernels (bf16's take longer)
                times[precision].append(time.perf_counter() - t0)
    ratios = sorted(a / b for a, b in zip(times["fp32"], times["bf16"]))
    median = {p: sorted(v)[len(v) // 2] for p, v in times.items()}
    return {**median, "ratio": ratios[len(ratios) // 2]}  # the median of step-by-step ratios


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Autocast for bf16/fp16 on the device; a no-op context for fp32."""
    if precision in DTYPES:
        return torch.autocast(device_type=device.type, dtype=DTYPES[precision])
    return contextlib.nullcontext()


def grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler | None:
    """A gradient scaler for fp16 (its small range underflows gradients); None otherwise."""
    if precision == "fp16":
        return torch.amp.GradScaler(device.type)
    return None


_ALLOCATOR_TUNED = False


def tune_allocator() -> bool:
    """Keep freed large blocks in glibc's heap instead of unmapping them (Linux/glibc; once per process).

    A training step allocates and frees activation buffers of megabytes; above glibc's mmap
    threshold each one is a fresh ``mmap``/``munmap`` pair, and the kernel zeroes every new page.
    Raising the threshold and never trimming the heap lets later batches reuse the same memory.
    Returns whether the settings were applied.
    """
    global _ALLOCATOR_TUNED
    if _ALLOCATOR_TUNED:
        return True
    if platform.system() != "Linux" or os.environ.get("GALAXY_SYNTH_NO_MALLOPT"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False  # not glibc (e.g. musl): nothing to tune
    m_trim_threshold, m_mmap_threshold = -1, -3
    ok = mallopt(m_mmap_threshold, 1 << 30) == 1 and mallopt(m_trim_threshold, 2**31 - 1) == 1
    _ALLOCATOR_TUNED = ok
    return ok
