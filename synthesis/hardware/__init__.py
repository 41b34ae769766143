"""Where networks run: the cores a process may use, devices, precision."""

import lazy_loader

# The front door: other packages import these names from here. Loaded on first use, so a light
# import (a torch-free path, a --help) never pulls in the heavy modules behind it.
__getattr__, __dir__, __all__ = lazy_loader.attach(__name__, submod_attrs={
    "cores": ["ExecutionPlan", "allotted_cores", "cpu_bf16_flags", "execution_plan", "set_torch_threads"],
    "device": ["PrecisionChoice", "autocast", "grad_scaler", "machine_key", "resolve_device", "resolve_precision", "tune_allocator"],
})
