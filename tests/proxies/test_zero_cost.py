"""Each zero-cost score against a case small enough to compute by hand (numpy)."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from proxies.zero_cost import (
    grad_norm_score,
    jacov_score,
    naswot_score,
    snip_score,
    synflow_score,
    zero_cost_scores,
)


def linear_case():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(4, 3, bias=False))
    x = torch.randn(5, 1, 2, 2)
    y = torch.tensor([0, 1, 2, 0, 1])
    return net, x, y


def ce_grad_numpy(w, x, y):
    """dL/dW for mean cross-entropy of logits x @ w.T."""
    logits = x @ w.T
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p[np.arange(len(y)), y] -= 1
    return p.T @ x / len(y)


def test_grad_norm_and_snip_match_hand_computation():
    net, x, y = linear_case()
    w = net[1].weight.detach().numpy().astype(float)
    g = ce_grad_numpy(w, x.flatten(1).numpy().astype(float), y.numpy())
    assert grad_norm_score(net, x, y) == pytest.approx(np.linalg.norm(g), rel=1e-5)
    assert snip_score(net, x, y) == pytest.approx(np.abs(w * g).sum(), rel=1e-5)


def test_synflow_of_a_two_layer_linear_net_is_twice_the_path_sum():
    torch.manual_seed(1)
    net = nn.Sequential(nn.Flatten(), nn.Linear(4, 3, bias=False), nn.Linear(3, 2, bias=False))
    w1 = np.abs(net[1].weight.detach().numpy().astype(float))
    w2 = np.abs(net[2].weight.detach().numpy().astype(float))
    r = np.ones(2) @ w2 @ w1 @ np.ones(4)  # R = 1ᵀ|W2||W1|1; each layer contributes R (homogeneity)
    assert synflow_score(net, (1, 2, 2)) == pytest.approx(math.log(2 * r), rel=1e-9)
    assert (net[1].weight < 0).any(), "synflow must not change the caller's weights"


def test_naswot_matches_hand_built_kernel():
    net = nn.Sequential(nn.Flatten(), nn.Linear(2, 3, bias=False), nn.ReLU())
    with torch.no_grad():
        net[1].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
    x = torch.tensor([[1.0, 1.0], [1.0, -2.0], [-1.0, -1.0]]).view(3, 1, 1, 2)
    codes = np.array([[1, 1, 1], [1, 0, 0], [0, 0, 0]], dtype=float)  # sign pattern of the 3 ReLUs
    k = codes @ codes.T + (1 - codes) @ (1 - codes).T
    assert naswot_score(net, x) == pytest.approx(np.linalg.slogdet(k)[1])


def test_jacov_of_a_linear_net_has_the_closed_form():
    net, x, _ = linear_case()
    n, k = len(x), 1e-5
    # Every input's Jacobian of Σf is the same vector (column sums of W): correlation matrix of
    # ones, eigenvalues n and 0 (n−1 times).
    expected = -((math.log(n + k) + 1 / (n + k)) + (n - 1) * (math.log(k) + 1 / k))
    assert jacov_score(net, x) == pytest.approx(expected, rel=1e-6)


def test_all_scores_leave_the_model_untouched():
    torch.manual_seed(2)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    net.eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    scores = zero_cost_scores(net, torch.randn(6, 3, 8, 8), torch.tensor([0, 1, 2, 0, 1, 2]))
    assert set(scores) == {"zc_grad_norm", "zc_snip", "zc_synflow", "zc_naswot", "zc_jacov", "zc_seconds"}
    assert all(np.isfinite(v) for v in scores.values())
    assert not net.training
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert all(p.grad is None for p in net.parameters())
