import pytest
import torch
from torch import nn

from synthesis.models.spec import TrainConfig
from synthesis.training.recipe import make_loss


def test_focal_with_gamma_zero_equals_weighted_ce():
    logits = torch.randn(16, 3)
    y = torch.randint(0, 3, (16,))
    y[:3] = torch.tensor([0, 1, 2])
    focal = make_loss(TrainConfig(loss="focal", extra={"focal_gamma": 0.0}), y, 3)
    counts = torch.bincount(y, minlength=3).float()
    w = counts.sum() / (3 * counts)
    per = nn.functional.cross_entropy(logits, y, reduction="none") * w[y]
    assert float(focal(logits, y)) == pytest.approx(float(per.mean()), rel=1e-5)


def test_warmup_then_decay_reaches_zero_within_the_run():
    from synthesis.training.recipe import make_scheduler

    for schedule in ("cosine", "linear"):
        opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
        sched = make_scheduler(opt, TrainConfig(schedule=schedule, warmup=0.2), total_steps=10)
        lrs = []
        for _ in range(10):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        assert lrs[0] == pytest.approx(1 / 3) and lrs[1] == pytest.approx(2 / 3)  # warm-up over 2 of 10 steps
        assert lrs[2] == pytest.approx(1.0)
        assert all(a >= b for a, b in zip(lrs[2:], lrs[3:]))  # then decays monotonically ...
        assert opt.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)  # ... to zero after the last step



def test_soft_cross_entropy_is_cross_entropy_with_probability_targets():
    from synthesis.training.recipe import soft_cross_entropy

    logits = torch.randn(8, 4)
    y = torch.randint(0, 4, (8,))
    one_hot = torch.nn.functional.one_hot(y, 4).float()
    assert torch.allclose(soft_cross_entropy(logits, one_hot), torch.nn.functional.cross_entropy(logits, y))
    votes = torch.softmax(torch.randn(8, 4), 1)
    assert torch.allclose(soft_cross_entropy(logits, votes), torch.nn.functional.cross_entropy(logits, votes))
    # the gradient pulls the prediction towards the vote fractions, not towards the plurality class
    fitted = votes.log().clone().requires_grad_(True)
    soft_cross_entropy(fitted, votes).backward()
    assert fitted.grad.abs().max() < 1e-6
