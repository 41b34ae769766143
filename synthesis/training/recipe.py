"""How a network is trained: the loss, the optimiser and the learning-rate schedule of a TrainConfig.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from synthesis.models import TrainConfig


def make_loss(cfg: TrainConfig, train_labels: torch.Tensor, num_classes: int) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Cross-entropy, class-weighted cross-entropy (inverse frequency) or focal loss (γ=2)."""
    weight = None
    if cfg.loss in ("weighted_ce", "focal"):
        counts = torch.bincount(train_labels.cpu(), minlength=num_classes).float().clamp(min=1)
        weight = (counts.sum() / (num_classes * counts)).to(train_labels.device)
    if cfg.loss == "focal":
        gamma = float(cfg.extra.get("focal_gamma", 2.0))

        def focal(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            logp = F.log_softmax(logits, dim=1)
            logp_t = logp.gather(1, target[:, None]).squeeze(1)
            w = weight[target] if weight is not None else 1.0
            return (-(1 - logp_t.exp()) ** gamma * logp_t * w).mean()

        return focal
    return nn.CrossEntropyLoss(weight=weight, label_smoothing=cfg.label_smoothing)


def soft_cross_entropy(logits: torch.Tensor, fractions: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against a distribution over classes (Galaxy Zoo's vote fractions), as zoobot trains on votes."""
    return -(fractions * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    params = model.parameters()
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=True, weight_decay=cfg.weight_decay)
    return torch.optim.RMSprop(params, lr=cfg.lr, momentum=cfg.momentum, alpha=0.9, weight_decay=cfg.weight_decay)


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int) -> torch.optim.lr_scheduler.LRScheduler | None:
    """The LR schedule over ``total_steps`` optimiser steps (this run's own budget).

    ``constant``; ``cosine`` (to zero at the last step); ``linear`` (to zero). ``cfg.warmup`` > 0
    puts a linear warm-up over that fraction of the steps in front of the decay.
    """
    if cfg.schedule == "constant" and cfg.warmup == 0:
        return None
    warm = int(round(cfg.warmup * total_steps)) if cfg.warmup > 0 else 0
    decay_steps = max(1, total_steps - warm)
    if cfg.schedule == "cosine":
        # CosineAnnealingLR (not a closed-form lambda) keeps full-training results bit-identical
        # to the ground truth measured before warm-up existed.
        decay: torch.optim.lr_scheduler.LRScheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=decay_steps)
    elif cfg.schedule == "linear":
        decay = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: max(0.0, 1.0 - step / decay_steps))
    else:
        decay = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    if warm == 0:
        return decay
    ramp = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: (step + 1) / (warm + 1))
    return torch.optim.lr_scheduler.SequentialLR(optimizer, [ramp, decay], milestones=[warm])
