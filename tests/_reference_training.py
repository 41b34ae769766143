"""The training loop as it was before it became sync-free (commit b6a79f0), kept as a test oracle.

It syncs with the device after every batch (``.item()``, ``float(...)``) and draws its random
numbers on the CPU. ``tests/synthesis/training/test_loop.py`` checks that today's loop records exactly the same
metrics on the CPU for a fixed seed. Not product code: do not import it outside tests.
"""

from __future__ import annotations

import math
import time
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from synthesis.data.preparation import TensorSplit
from synthesis.data.preprocessing import Normalizer
from synthesis.models.spec import TrainConfig
from synthesis.training.loop import (
    EpochRecord,
    TrainHistory,
    TrainingDiverged,
    _forward,
    evaluate,
)
from synthesis.training.recipe import make_loss, make_optimizer


class ReferenceDihedralAugment:
    """Per-sample random element of D4 (+ Gaussian noise), label-aware for mirror pairs."""

    def __init__(self, num_classes: int, mirror_pairs: Sequence[tuple[int, int]] = (), allow_flips: bool = True, noise_std: float = 0.0) -> None:
        self.allow_flips = allow_flips
        self.noise_std = noise_std
        swap = torch.arange(num_classes)
        for a, b in mirror_pairs:
            swap[a], swap[b] = b, a
        self.flip_label = swap
        self._noise_bank: torch.Tensor | None = None
        self._maps: torch.Tensor | None = None

    def _noise(self, like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        # Fresh Gaussian noise for every batch cost ~5 ms per 64 images on a CPU; 256 noise images
        # drawn once and picked per sample cost one copy. Paired with a random D4 element and
        # image, a repeated noise image is harmless.
        n, c, h, w = like.shape
        if self._noise_bank is None or self._noise_bank.shape[1:] != (c, h, w):
            self._noise_bank = torch.randn((256, c, h, w), generator=generator).to(like.device)
        return self._noise_bank[torch.randint(0, 256, (n,), generator=generator).to(like.device)]

    @staticmethod
    def _pixel_maps(h: int, w: int, device: torch.device) -> torch.Tensor:
        """[8, h*w] source-pixel index of each D4 element (k rotations of an optional mirror)."""
        grid = torch.arange(h * w, device=device).view(1, 1, h, w)
        maps = []
        for flip in (False, True):
            base = torch.flip(grid, dims=(3,)) if flip else grid
            for k in range(4):
                maps.append(torch.rot90(base, k, dims=(2, 3)).reshape(-1))
        return torch.stack(maps)

    def __call__(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        n, c, h, w = x.shape
        if h != w:
            raise ValueError("dihedral augmentation needs square images")
        rot = torch.randint(0, 4, (n,), generator=generator)
        flip = torch.randint(0, 2, (n,), generator=generator) if self.allow_flips else torch.zeros(n, dtype=torch.long)
        if self._maps is None or self._maps.shape[1] != h * w or self._maps.device != x.device:
            self._maps = self._pixel_maps(h, w, x.device)
        # One gather for the whole batch (8 masked passes cost ~12 ms per 64 images on a CPU).
        index = self._maps[(flip * 4 + rot).to(x.device)]  # [n, h*w]
        out = torch.gather(x.reshape(n, c, h * w), 2, index[:, None, :].expand(n, c, h * w)).view(n, c, h, w)
        flipped = flip.bool().to(y.device)
        y = torch.where(flipped, self.flip_label.to(y.device)[y], y)
        if self.noise_std > 0:
            out = out.add_(self._noise(out, generator), alpha=self.noise_std)
        return out, y


def reference_train_model(
    model: nn.Module,
    train: TensorSplit,
    cfg: TrainConfig,
    epochs: int,
    *,
    normalizer: Normalizer,
    num_classes: int,
    val: TensorSplit | None = None,
    mirror_pairs: Sequence[tuple[int, int]] = (),
    allow_flips: bool = True,
    seed: int = 0,
    on_epoch_end: Callable[[EpochRecord], None] | None = None,
    progress: bool = False,
    progress_desc: str = "training",
) -> TrainHistory:
    """Train ``model`` in place for ``epochs``; raise :class:`TrainingDiverged` on NaN/inf.

    ``on_epoch_end`` sees each finished epoch (the study reports to its pruner there; raising
    ``optuna.TrialPruned`` from it stops training).
    """
    from tqdm.auto import tqdm

    device = train.x.device
    generator = torch.Generator().manual_seed(seed)
    augment = ReferenceDihedralAugment(num_classes, mirror_pairs, allow_flips, cfg.noise_std) if cfg.augment else None
    loss_fn = make_loss(cfg, train.y, num_classes)
    optimizer = make_optimizer(model, cfg)
    n = len(train)
    steps_per_epoch = max(1, math.ceil(n / cfg.batch_size))
    scheduler = None
    if cfg.schedule == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * steps_per_epoch)
    history = TrainHistory()
    model.to(device, memory_format=torch.channels_last).train()
    bar = tqdm(total=epochs * steps_per_epoch, desc=progress_desc, unit="batch", disable=not progress, leave=False)
    try:
        for epoch in range(1, epochs + 1):
            t0 = time.perf_counter()
            order = torch.randperm(n, generator=generator).to(device)
            losses: list[float] = []
            accs: list[float] = []
            grads: list[float] = []
            seen = 0
            lr = optimizer.param_groups[0]["lr"]
            for b in range(steps_per_epoch):
                idx = order[b * cfg.batch_size : (b + 1) * cfg.batch_size]
                if len(idx) < 2:  # BatchNorm cannot train on a single sample
                    continue
                x = normalizer(train.x[idx])
                y = train.y[idx]
                if augment is not None:
                    x, y = augment(x, y, generator)
                logits = _forward(model, x, train.extra[idx])
                loss = loss_fn(logits, y)
                if not torch.isfinite(loss):
                    raise TrainingDiverged(f"train loss became {loss.item()} at epoch {epoch}, batch {b + 1}")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=float("inf")))
                if not math.isfinite(grad_norm):
                    raise TrainingDiverged(f"gradient norm became {grad_norm} at epoch {epoch}, batch {b + 1}")
                optimizer.step()
                if scheduler is not None:
                    scheduler.step()
                losses.append(loss.item())
                accs.append(float((logits.argmax(1) == y).float().mean()))
                grads.append(grad_norm)
                seen += len(idx)
                bar.update(1)
            seconds = time.perf_counter() - t0
            record = EpochRecord(
                epoch=epoch,
                train_loss=float(np.mean(losses)) if losses else float("nan"),
                train_acc=float(np.mean(accs)) if accs else float("nan"),
                lr=lr,
                seconds=seconds,
                images_per_second=seen / seconds if seconds > 0 else 0.0,
                batch_losses=losses,
                batch_accs=accs,
                batch_grad_norms=grads,
            )
            if val is not None:
                ev = evaluate(model, val, normalizer, num_classes)
                if not math.isfinite(ev.loss):
                    raise TrainingDiverged(f"validation loss became {ev.loss} at epoch {epoch}")
                record.val_loss, record.val_acc, record.val_balanced_acc = ev.loss, ev.accuracy, ev.balanced_accuracy
            history.epochs.append(record)
            if on_epoch_end is not None:
                on_epoch_end(record)
    finally:
        bar.close()
    return history
