"""The vote head: the Dirichlet-multinomial likelihood against a hand computation, unasked questions, the one
place a vote network's outputs split, and classifiers' specs unchanged."""

import numpy as np
import torch
from scipy.special import gammaln

from synthesis.models.builder import build_model, count_params, spec_cost
from synthesis.models.spec import ArchSpec, OutputLayout, StageSpec, model_spec_from_dict
from synthesis.models.vote_head import (
    dirichlet_means,
    dirichlet_multinomial_nll,
    fraction_errors,
    vote_head_of,
    vote_loss,
)


def _by_hand(alpha, k):
    """−log DirMult(k | α) = −[log n! − Σ log k_i! + log Γ(A) − log Γ(n + A) + Σ (log Γ(k_i + α_i) − log Γ(α_i))]."""
    alpha, k = np.asarray(alpha, float), np.asarray(k, float)
    n, a = k.sum(), alpha.sum()
    return -(gammaln(n + 1) - gammaln(k + 1).sum() + gammaln(a) - gammaln(n + a) + (gammaln(k + alpha) - gammaln(alpha)).sum())


def test_the_likelihood_is_the_dirichlet_multinomial_and_unasked_questions_give_nothing():
    alpha = torch.tensor([[2.0, 5.0, 1.5, 3.0, 4.0], [1.2, 9.0, 2.0, 2.0, 2.0]])
    counts = torch.tensor([[3.0, 7.0, 4.0, 0.0, 1.0], [10.0, 2.0, 0.0, 0.0, 0.0]])  # galaxy 2: question 2 unasked
    nll = dirichlet_multinomial_nll(alpha, counts, [2, 3])
    want = torch.tensor([_by_hand([2, 5], [3, 7]), _by_hand([1.5, 3, 4], [4, 0, 1])], dtype=torch.float32)
    assert torch.allclose(nll[0], want)
    assert torch.isclose(nll[1, 0], torch.tensor(_by_hand([1.2, 9], [10, 2]), dtype=torch.float32)) and nll[1, 1] == 0


def test_fraction_errors_count_only_galaxies_asked():
    alpha = torch.tensor([[1.0, 3.0, 2.0, 2.0], [3.0, 1.0, 5.0, 5.0]])
    counts = torch.tensor([[0.0, 4.0, 0.0, 0.0], [2.0, 2.0, 3.0, 1.0]])
    errors, asked = fraction_errors(alpha, counts, [2, 2])
    # q1: |0.25−0| and |0.75−0.5| → 0.25 each; q2 only galaxy 2: |0.5−0.75| = 0.25
    assert torch.allclose(errors, torch.tensor([0.5, 0.25])) and asked.tolist() == [2, 1]
    assert torch.allclose(dirichlet_means(alpha, [2, 2]).view(2, 2, 2).sum(-1), torch.ones(2, 2))


def _spec(layout, num_classes):
    return ArchSpec(num_classes=num_classes, stages=(StageSpec(1, 8),), image_size=16, votes=layout)


def test_the_class_question_gives_the_class_logits_as_the_log_dirichlet_mean():
    torch.manual_seed(0)
    net = build_model(_spec(OutputLayout(0, (2, 3), class_question=1), 3)).eval()
    x = torch.rand(4, 3, 16, 16)
    logits, alpha = net.votes(x)
    assert alpha.shape == (4, 5) and bool((alpha > 1).all() and (alpha < 101).all())  # zoobot's 1 + 100·sigmoid
    assert torch.allclose(logits.softmax(1), alpha[:, 2:] / alpha[:, 2:].sum(1, keepdim=True), atol=1e-6)
    assert torch.equal(net(x), logits)  # forward: the class logits every classifier path reads
    head = vote_head_of(net)
    assert head is not None and head.answers == [2, 3] and head.in_features == 8
    loss = vote_loss(logits, alpha, torch.tensor([[1.0, 1, 2, 0, 0]] * 4), head, None, torch.zeros(4, dtype=torch.long))
    assert torch.isclose(loss, dirichlet_multinomial_nll(alpha, torch.tensor([[1.0, 1, 2, 0, 0]] * 4), [2, 3]).sum(1).mean())


def test_a_label_column_class_has_its_own_logits_and_its_cross_entropy():
    net = build_model(_spec(OutputLayout(4, (2,)), 4)).eval()
    logits, alpha = net.votes(torch.rand(2, 3, 16, 16))
    assert logits.shape == (2, 4) and alpha.shape == (2, 2)
    ce = torch.nn.CrossEntropyLoss()
    y = torch.tensor([0, 3])
    counts = torch.tensor([[5.0, 5.0], [0.0, 0.0]])
    loss = vote_loss(logits, alpha, counts, vote_head_of(net), ce, y)
    assert torch.isclose(loss, dirichlet_multinomial_nll(alpha, counts, [2]).sum(1).mean() + ce(logits, y))


def test_specs_record_the_head_and_a_classifier_spec_is_unchanged():
    plain = ArchSpec(num_classes=4, stages=(StageSpec(1, 8),), image_size=16)
    assert "votes" not in plain.to_dict() and plain.spec_hash() == model_spec_from_dict(plain.to_dict()).spec_hash()
    votes = _spec(OutputLayout(0, (2, 4), 1), 4)
    again = model_spec_from_dict(votes.to_dict())
    assert again == votes and again.votes.outputs == 6 and again.spec_hash() != plain.spec_hash()
    params, _ = spec_cost(votes)
    assert params == count_params(build_model(votes))  # the head's width is counted
    assert OutputLayout.of({"class_question": "b", "question": [{"name": "a", "answers": {"y": "c", "n": "rest"}},
                                                                  {"name": "b", "answers": {"p": "c", "q": "d"}}]}, 2) \
        == OutputLayout(0, (2, 2), 1)
    assert OutputLayout.of(None, 3) is None
