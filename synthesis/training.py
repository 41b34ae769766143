"""The one training loop: 2-epoch trials, full training and export all call :func:`train_model`.

Data lives on the device as uint8 tensors (preprocessed once, see :mod:`synthesis.data`);
a batch is indexed, converted to float, normalised and augmented in place — no per-epoch
image decoding and no DataLoader workers, which is what makes short trials cheap on a CPU.

Per batch the loop records loss, accuracy and gradient norm; per epoch the mean train loss and
accuracy, and (given a validation split) val loss, accuracy and balanced accuracy. These raw
records are what ``proxies`` turns into the composite score.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from synthesis.augment import DihedralAugment
from synthesis.data import GalaxyImages
from synthesis.spec import TrainConfig


class TrainingDiverged(RuntimeError):
    """Loss or gradient became NaN/inf; the message says where."""


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    return torch.device(name)


@dataclass
class Normalizer:
    """Per-channel mean/std (in [0, 1] units) from the training split; maps uint8 → float."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @classmethod
    def fit(cls, images: np.ndarray) -> Normalizer:
        pix = images.reshape(-1, images.shape[-1]).astype(np.float64) / 255.0
        std = np.maximum(pix.std(axis=0), 1e-3)
        return cls(tuple(float(v) for v in pix.mean(axis=0)), tuple(float(v) for v in std))  # type: ignore[arg-type]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(self.mean, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, -1, 1, 1)
        return (x.float() / 255.0 - mean) / std


@dataclass
class TensorSplit:
    """One split on the device: uint8 images [N,3,H,W], labels, standardised extra inputs."""

    x: torch.Tensor
    y: torch.Tensor
    extra: torch.Tensor

    def __len__(self) -> int:
        return int(self.y.shape[0])

    @property
    def has_extra(self) -> bool:
        return self.extra.shape[1] > 0


@dataclass
class ExtraScaler:
    """Standardise extra numeric inputs (z, z_err…) with training-split statistics."""

    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)

    @classmethod
    def fit(cls, extras: np.ndarray) -> ExtraScaler:
        if extras.shape[1] == 0:
            return cls()
        return cls(extras.mean(axis=0).tolist(), np.maximum(extras.std(axis=0), 1e-6).tolist())

    def transform(self, extras: np.ndarray) -> np.ndarray:
        if not self.mean:
            return extras.astype(np.float32)
        return ((extras - np.array(self.mean)) / np.array(self.std)).astype(np.float32)


def to_tensor_split(data: GalaxyImages, indices: np.ndarray, scaler: ExtraScaler, device: torch.device) -> TensorSplit:
    x = torch.from_numpy(np.ascontiguousarray(data.images[indices].transpose(0, 3, 1, 2))).to(device)
    y = torch.from_numpy(data.labels[indices]).to(device)
    extra = torch.from_numpy(scaler.transform(data.extras[indices])).to(device)
    return TensorSplit(x, y, extra)


@dataclass
class EpochRecord:
    epoch: int
    train_loss: float
    train_acc: float
    lr: float
    seconds: float
    images_per_second: float
    batch_losses: list[float]
    batch_accs: list[float]
    batch_grad_norms: list[float]
    val_loss: float | None = None
    val_acc: float | None = None
    val_balanced_acc: float | None = None


@dataclass
class TrainHistory:
    epochs: list[EpochRecord] = field(default_factory=list)

    def to_dict(self, round_to: int = 6) -> dict:
        def r(v):
            if isinstance(v, float):
                return float(f"{v:.{round_to}g}")
            if isinstance(v, list):
                return [r(x) for x in v]
            return v

        return {"epochs": [{k: r(v) for k, v in asdict(e).items()} for e in self.epochs]}

    @property
    def last(self) -> EpochRecord:
        return self.epochs[-1]


@dataclass
class EvalResult:
    loss: float
    accuracy: float
    balanced_accuracy: float
    macro_f1: float
    confusion: list[list[int]]
    probabilities: np.ndarray | None = None

    def metrics(self) -> dict:
        return {"loss": self.loss, "accuracy": self.accuracy, "balanced_accuracy": self.balanced_accuracy,
                "macro_f1": self.macro_f1, "confusion": self.confusion}


def classification_metrics(confusion: np.ndarray) -> tuple[float, float, float]:
    """Accuracy, balanced accuracy (mean recall over present classes) and macro-F1."""
    total = confusion.sum()
    tp = np.diag(confusion).astype(np.float64)
    support = confusion.sum(axis=1)
    predicted = confusion.sum(axis=0)
    present = support > 0
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(tp), where=(precision + recall) > 0)
    acc = float(tp.sum() / total) if total else 0.0
    return acc, float(recall[present].mean()), float(f1[present].mean())


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


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    params = model.parameters()
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=True, weight_decay=cfg.weight_decay)
    return torch.optim.RMSprop(params, lr=cfg.lr, momentum=cfg.momentum, alpha=0.9, weight_decay=cfg.weight_decay)


def _forward(model: nn.Module, x: torch.Tensor, extra: torch.Tensor) -> torch.Tensor:
    # channels_last: measured 1.3-1.5x faster training on CPU for all three block types.
    x = x.contiguous(memory_format=torch.channels_last)
    return model(x, extra) if extra.shape[1] > 0 else model(x)


@torch.no_grad()
def evaluate(model: nn.Module, split: TensorSplit, normalizer: Normalizer, num_classes: int, batch_size: int = 256, keep_probabilities: bool = False) -> EvalResult:
    was_training = model.training
    model.eval()
    total_loss = 0.0
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64)
    probs = []
    for start in range(0, len(split), batch_size):
        sl = slice(start, start + batch_size)
        logits = _forward(model, normalizer(split.x[sl]), split.extra[sl])
        y = split.y[sl]
        total_loss += F.cross_entropy(logits.float(), y, reduction="sum").item()
        pred = logits.argmax(1)
        confusion += torch.bincount((y * num_classes + pred).cpu(), minlength=num_classes**2).view(num_classes, num_classes)
        if keep_probabilities:
            probs.append(F.softmax(logits.float(), 1).cpu().numpy())
    model.train(was_training)
    cm = confusion.numpy()
    acc, bal, f1 = classification_metrics(cm)
    return EvalResult(total_loss / max(1, len(split)), acc, bal, f1, cm.tolist(),
                      np.concatenate(probs) if keep_probabilities and probs else None)


def train_model(
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
    augment = DihedralAugment(num_classes, mirror_pairs, allow_flips, cfg.noise_std) if cfg.augment else None
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
