"""Loss terms: closed-form values and gradients, summed over T and B; no gradient into the targets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from learner import losses


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def softmax_np(logits):
    shifted = logits - logits.max(-1, keepdims=True)
    probs = np.exp(shifted)
    return probs / probs.sum(-1, keepdims=True)


def test_policy_gradient_value_and_gradient(rng):
    num_steps, batch, num_actions = 4, 3, 5
    logits_np = rng.normal(size=(num_steps, batch, num_actions))
    actions = rng.integers(0, num_actions, size=(num_steps, batch))
    advantages_np = rng.normal(size=(num_steps, batch))
    logits = torch.tensor(logits_np, requires_grad=True)
    advantages = torch.tensor(advantages_np, requires_grad=True)
    log_probs = torch.log_softmax(logits, -1).gather(-1, torch.tensor(actions)[..., None])[..., 0]

    loss = losses.policy_gradient_loss(log_probs, advantages)
    loss.backward()

    probs = softmax_np(logits_np)
    expected = 0.0
    expected_grad = np.zeros_like(logits_np)
    for t in range(num_steps):
        for b in range(batch):
            a = actions[t, b]
            expected -= np.log(probs[t, b, a]) * advantages_np[t, b]
            one_hot = np.eye(num_actions)[a]
            # d/dlogits of -log softmax(logits)[a] * A = -(onehot(a) - p) * A
            expected_grad[t, b] = -(one_hot - probs[t, b]) * advantages_np[t, b]
    np.testing.assert_allclose(loss.item(), expected, rtol=1e-12)
    np.testing.assert_allclose(logits.grad.numpy(), expected_grad, atol=1e-12)
    assert advantages.grad is None  # no gradient into the advantages


def test_baseline_value_and_gradient(rng):
    values_np = rng.normal(size=(5, 2))
    vs_np = rng.normal(size=(5, 2))
    values = torch.tensor(values_np, requires_grad=True)
    vs = torch.tensor(vs_np, requires_grad=True)
    loss = losses.baseline_loss(values, vs)
    loss.backward()
    expected = sum(0.5 * (vs_np[t, b] - values_np[t, b]) ** 2 for t in range(5) for b in range(2))
    np.testing.assert_allclose(loss.item(), expected, rtol=1e-12)
    np.testing.assert_allclose(values.grad.numpy(), values_np - vs_np, atol=1e-12)
    assert vs.grad is None  # no gradient into the targets


def test_entropy_value_and_gradient(rng):
    logits_np = rng.normal(size=(3, 4, 6))
    logits = torch.tensor(logits_np, requires_grad=True)
    log_probs = torch.log_softmax(logits, -1)
    entropy = -(log_probs.exp() * log_probs).sum(-1)
    loss = losses.entropy_loss(entropy)
    loss.backward()
    probs = softmax_np(logits_np)
    log_p = np.log(probs)
    expected = float(np.sum(probs * log_p))
    # d/dz_j sum_i p_i log p_i = p_j (log p_j - sum_i p_i log p_i)
    expected_grad = probs * (log_p - np.sum(probs * log_p, -1, keepdims=True))
    np.testing.assert_allclose(loss.item(), expected, rtol=1e-12)
    np.testing.assert_allclose(logits.grad.numpy(), expected_grad, atol=1e-12)


def test_total_is_weighted_sum_of_terms(rng):
    shape = (6, 3)
    log_probs, advantages, values, vs, entropy = (torch.tensor(rng.normal(size=shape)) for _ in range(5))
    terms = losses.total_loss(log_probs, advantages, values, vs, entropy, baseline_cost=0.5, entropy_cost=0.01)
    expected_pg = -np.sum(log_probs.numpy() * advantages.numpy())
    expected_baseline = 0.5 * 0.5 * np.sum((vs.numpy() - values.numpy()) ** 2)
    expected_entropy = -0.01 * np.sum(entropy.numpy())
    np.testing.assert_allclose(terms.pg.item(), expected_pg, rtol=1e-12)
    np.testing.assert_allclose(terms.baseline.item(), expected_baseline, rtol=1e-12)
    np.testing.assert_allclose(terms.entropy.item(), expected_entropy, rtol=1e-12)
    np.testing.assert_allclose(terms.total.item(), expected_pg + expected_baseline + expected_entropy, rtol=1e-12)


def test_reduction_is_a_sum_over_time_and_batch():
    """Doubling the batch with a copy doubles every term (a mean would leave them unchanged)."""
    rng = np.random.default_rng(1)
    inputs = [torch.tensor(rng.normal(size=(4, 2))) for _ in range(5)]
    single = losses.total_loss(*inputs, baseline_cost=0.5, entropy_cost=0.01)
    doubled = losses.total_loss(*[torch.cat([x, x], dim=1) for x in inputs], baseline_cost=0.5, entropy_cost=0.01)
    for one, two in zip(single, doubled, strict=True):
        np.testing.assert_allclose(two.item(), 2 * one.item(), rtol=1e-12)


def test_total_gradient_reaches_only_policy_and_values():
    values = torch.randn(3, 2, requires_grad=True)
    vs = torch.randn(3, 2, requires_grad=True)
    advantages = torch.randn(3, 2, requires_grad=True)
    log_probs = torch.randn(3, 2, requires_grad=True)
    entropy = torch.rand(3, 2, requires_grad=True)
    terms = losses.total_loss(log_probs, advantages, values, vs, entropy, baseline_cost=0.25, entropy_cost=0.1)
    terms.total.backward()
    assert vs.grad is None and advantages.grad is None
    np.testing.assert_allclose(values.grad.numpy(), 0.25 * (values - vs).detach().numpy(), atol=1e-6)
    np.testing.assert_allclose(log_probs.grad.numpy(), -advantages.detach().numpy(), atol=1e-6)
    np.testing.assert_allclose(entropy.grad.numpy(), np.full((3, 2), -0.1), atol=1e-6)
