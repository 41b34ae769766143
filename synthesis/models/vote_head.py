"""The vote head (``--schema``): one Dirichlet per Galaxy Zoo question, trained on the volunteers' vote counts by
the Dirichlet-multinomial likelihood, as zoobot trains (``zoobot/pytorch/training/losses.py``).

The one place that knows how a vote network's raw outputs split (:class:`synthesis.models.spec.OutputLayout`):
training, evaluation, export and predict all ask :class:`VoteHead` (through ``GalaxyNet.votes``) or the functions here.

Concentrations are zoobot's ``1 + 100·sigmoid(z)``: bounded to (1, 101), so ``lgamma`` never sees a huge or tiny
argument early in training, and the values compare with those Galaxy Zoo's zoobot catalogues publish.
"""

from __future__ import annotations

from typing import Callable, List

import torch
from torch import nn

from synthesis.models.spec import OutputLayout

CONCENTRATION_RANGE = 100.0  # α = 1 + 100·sigmoid(z), zoobot's range


class VoteHead(nn.Module):
    """Linear features → [class logits | concentrations]; ``forward`` gives the class logits alone: the label
    column's classes, or the log of the class question's Dirichlet mean (log α − log Σα)."""

    def __init__(self, features: int, layout: OutputLayout) -> None:
        super().__init__()
        self.linear = nn.Linear(features, layout.outputs)
        self.classes = layout.classes
        self.answers = list(layout.answers)
        starts = [layout.classes + sum(layout.answers[:q]) for q in range(len(layout.answers))]
        if layout.class_question is None:
            self.class_start, self.class_end = 0, layout.classes
        else:
            self.class_start = starts[layout.class_question]
            self.class_end = self.class_start + layout.answers[layout.class_question]
        self.from_question = layout.class_question is not None

    @property
    def in_features(self) -> int:  # what predict --embeddings reads off a head
        return self.linear.in_features

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.votes(h)[0]

    def votes(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raw = self.linear(h)
        concentrations = 1.0 + CONCENTRATION_RANGE * torch.sigmoid(raw[:, self.classes:])
        if self.from_question:
            alpha = concentrations[:, self.class_start - self.classes:self.class_end - self.classes]
            logits = torch.log(alpha) - torch.log(alpha.sum(dim=1, keepdim=True))
        else:
            logits = raw[:, self.class_start:self.class_end]
        return logits, concentrations


def vote_head_of(model: nn.Module) -> VoteHead | None:
    """The vote head of a network (or of a packaged one), or None for a classifier."""
    head = getattr(getattr(model, "net", model), "classifier", None)
    return head if isinstance(head, VoteHead) else None


def vote_loss(logits: torch.Tensor, concentrations: torch.Tensor, counts: torch.Tensor, head: VoteHead,
              class_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
    """The batch mean of the questions' summed Dirichlet-multinomial NLL (zoobot's loss), plus the class loss of
    the class logits where the class is a label column (not a question)."""
    loss = dirichlet_multinomial_nll(concentrations, counts, head.answers).sum(dim=1).mean()
    return loss + class_loss(logits, labels) if head.classes else loss


def question_slices(answers: List[int]) -> list[slice]:
    """Each question's columns in the concentrations (and the vote counts)."""
    starts = [sum(answers[:q]) for q in range(len(answers))]
    return [slice(s, s + a) for s, a in zip(starts, answers)]


def dirichlet_multinomial_nll(concentrations: torch.Tensor, counts: torch.Tensor, answers: List[int]) -> torch.Tensor:
    """Negative log-likelihood [N, questions] of each question's vote counts under a Dirichlet-multinomial with
    these concentrations (the multinomial coefficient included, as pyro's ``DirichletMultinomial``). A question
    nobody was asked (no votes) gives exactly 0."""
    out = []
    for sl in question_slices(answers):
        alpha, k = concentrations[:, sl], counts[:, sl]
        n, total_alpha = k.sum(dim=1), alpha.sum(dim=1)
        log_prob = (torch.lgamma(n + 1) - torch.lgamma(k + 1).sum(dim=1) + torch.lgamma(total_alpha)
                    - torch.lgamma(n + total_alpha) + (torch.lgamma(k + alpha) - torch.lgamma(alpha)).sum(dim=1))
        out.append(-log_prob)
    return torch.stack(out, dim=1)


def dirichlet_means(concentrations: torch.Tensor, answers: List[int]) -> torch.Tensor:
    """Each question's Dirichlet mean (predicted vote fractions), [N, answers]: every question's sum to 1."""
    return torch.cat([concentrations[:, sl] / concentrations[:, sl].sum(dim=1, keepdim=True)
                      for sl in question_slices(answers)], dim=1)


def fraction_errors(concentrations: torch.Tensor, counts: torch.Tensor, answers: List[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per question: the summed mean |predicted − voted fraction| over galaxies asked it, and how many were ([Q] each)."""
    means = dirichlet_means(concentrations, answers)
    errors, asked = [], []
    for sl in question_slices(answers):
        n = counts[:, sl].sum(dim=1)
        observed = counts[:, sl] / n.clamp(min=1e-12)[:, None]
        per_galaxy = (means[:, sl] - observed).abs().mean(dim=1)
        errors.append(torch.where(n > 0, per_galaxy, torch.zeros_like(per_galaxy)).sum())
        asked.append((n > 0).sum())
    return torch.stack(errors), torch.stack(asked)
