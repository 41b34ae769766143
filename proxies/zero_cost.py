"""Zero-cost scores of a network at initialisation, from one batch, before any training.

Each follows its paper's definition (and NASLib's reference implementation where the paper
leaves a choice); all take a plain ``nn.Module`` whose ``forward(x)`` returns logits, so this
module knows nothing about how the network was built.

* ``zc_grad_norm`` — Σ over conv/linear weights of ‖∂L/∂W‖₂ (Abdelfattah et al. 2021).
* ``zc_snip`` — Σ |W ⊙ ∂L/∂W| (Lee et al. 2019, connection sensitivity).
* ``zc_synflow`` — Σ W ⊙ ∂R/∂W with all weights replaced by |W|, input all ones, R = Σ output,
  in float64 with BatchNorm in eval mode (Tanaka et al. 2020). Reported as log(score): the raw
  value spans tens of orders of magnitude across depths. Computed on a float64 copy of the
  model on the model's device, or on the CPU where the device has no float64 (Apple MPS).
* ``zc_naswot`` — log|det K|, K[i,j] = number of ReLUs on which inputs i and j agree
  (Mellor et al. 2021, "without training").
* ``zc_jacov`` — −Σ_λ [log(λ+k) + 1/(λ+k)], λ the eigenvalues of the correlation matrix of
  per-input Jacobians ∂Σf(x_i)/∂x_i, k = 1e-5 (Mellor et al. 2020, v1).
"""

from __future__ import annotations

import copy
import math
import time
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ZERO_COST_NAMES = ("zc_grad_norm", "zc_snip", "zc_synflow", "zc_naswot", "zc_jacov")


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _weighted_layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def _loss_grads(model: nn.Module, x: torch.Tensor, y: torch.Tensor, forward: Callable) -> list[nn.Module]:
    model.zero_grad(set_to_none=True)
    loss = F.cross_entropy(forward(model, x), y)
    loss.backward()
    return _weighted_layers(model)


def _grad_norm_from(layers: list[nn.Module]) -> float:
    return float(sum(m.weight.grad.norm(2).item() for m in layers if m.weight.grad is not None))


def _snip_from(layers: list[nn.Module]) -> float:
    return float(sum((m.weight * m.weight.grad).abs().sum().item() for m in layers if m.weight.grad is not None))


def grad_norm_score(model: nn.Module, x: torch.Tensor, y: torch.Tensor, forward: Callable | None = None) -> float:
    return _grad_norm_from(_loss_grads(model, x, y, forward or (lambda m, inp: m(inp))))


def snip_score(model: nn.Module, x: torch.Tensor, y: torch.Tensor, forward: Callable | None = None) -> float:
    return _snip_from(_loss_grads(model, x, y, forward or (lambda m, inp: m(inp))))


def synflow_score(model: nn.Module, input_shape: tuple[int, ...], forward: Callable | None = None) -> float:
    """log Σ |W| ⊙ ∂R/∂|W| (natural log; −inf if the flow is zero)."""
    forward = forward or (lambda m, inp: m(inp))
    device = _device_of(model)
    if device.type == "mps":  # MPS has no float64: score a CPU copy instead
        device = torch.device("cpu")
    net = copy.deepcopy(model).to(device=device, dtype=torch.float64).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    net.zero_grad(set_to_none=True)
    out = forward(net, torch.ones((1, *input_shape), dtype=torch.float64, device=device))
    out.sum().backward()
    total = sum((m.weight * m.weight.grad).sum().item() for m in _weighted_layers(net) if m.weight.grad is not None)
    return math.log(total) if total > 0 else float("-inf")


def naswot_score(model: nn.Module, x: torch.Tensor, forward: Callable | None = None) -> float:
    forward = forward or (lambda m, inp: m(inp))
    n = x.shape[0]
    # The n×n kernel is summed on the CPU in float64 (MPS has no float64); each layer's counts are
    # made on the device in float32, exact for these integers (< 2**24 units per layer).
    kernel = torch.zeros(n, n, dtype=torch.float64, device="cpu")

    def hook(_module, _inp, out):
        # K += agreements on this layer's units: c·cᵀ + (1−c)·(1−c)ᵀ = 2c·cᵀ − sᵢ − sⱼ + units.
        # Accumulated per layer instead of keeping every code: wide inverted blocks have millions
        # of units.
        c = (out.detach().flatten(1) > 0).float()
        agree = (2 * (c @ c.T)).to(device="cpu", dtype=torch.float64)
        rows = c.sum(1).to(device="cpu", dtype=torch.float64)
        kernel.add_(agree - rows[:, None] - rows[None, :] + c.shape[1])

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.ReLU)]
    try:
        was_training = model.training
        model.train()  # batch statistics, as at the start of training
        with torch.no_grad():
            forward(model, x)
        model.train(was_training)
    finally:
        for h in handles:
            h.remove()
    if not handles:
        return float("nan")
    sign, logdet = torch.linalg.slogdet(kernel)
    return float(logdet) if sign != 0 else float("-inf")


def jacov_score(model: nn.Module, x: torch.Tensor, forward: Callable | None = None, k: float = 1e-5) -> float:
    forward = forward or (lambda m, inp: m(inp))
    inp = x.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(forward(model, inp).sum(), inp)  # input gradient only
    jac = grad.detach().flatten(1).float().cpu().double().numpy()
    corr = np.corrcoef(jac)
    if not np.all(np.isfinite(corr)):
        return float("nan")
    eig = np.linalg.eigvalsh(corr)
    eig = np.clip(eig, 0, None)  # round-off can push zero eigenvalues slightly negative
    return float(-np.sum(np.log(eig + k) + 1.0 / (eig + k)))


def zero_cost_scores(model: nn.Module, x: torch.Tensor, y: torch.Tensor, forward: Callable | None = None) -> dict[str, float]:
    """All five scores on one batch; the model is left unchanged (weights, mode, no grads).

    ``forward(model, x)`` lets callers pass extra inputs; it defaults to ``model(x)``. The
    returned dict also has ``zc_seconds``, the time all five took.
    """
    t0 = time.perf_counter()
    state = copy.deepcopy(model.state_dict())  # BatchNorm running stats move in train-mode passes
    was_training = model.training
    model.train()
    forward = forward or (lambda m, inp: m(inp))
    layers = _loss_grads(model, x, y, forward)  # one backward serves both gradient-based scores
    scores = {
        "zc_grad_norm": _grad_norm_from(layers),
        "zc_snip": _snip_from(layers),
        "zc_synflow": synflow_score(model, tuple(x.shape[1:]), forward),
        "zc_naswot": naswot_score(model, x, forward),
        "zc_jacov": jacov_score(model, x, forward),
    }
    model.zero_grad(set_to_none=True)
    model.load_state_dict(state)
    model.train(was_training)
    scores["zc_seconds"] = time.perf_counter() - t0
    return scores
