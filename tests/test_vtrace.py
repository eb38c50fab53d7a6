"""V-trace against a deliberately naive float64 double loop written from the paper's closed form.

Espeholt et al. 2018, eq. (1), with per-step discounts gamma_t:
    v_s = V(x_s) + sum_{t=s}^{T-1} (prod_{i=s}^{t-1} gamma_i c_i) delta_t V
    delta_t V = rho_t^clip (r_t + gamma_t V(x_{t+1}) - V(x_t)),   V(x_T) = bootstrap
    pg_adv_s = rho_s^pg (r_s + gamma_s v_{s+1} - V(x_s)),        v_T = bootstrap
The reference never uses the backward recursion that the implementation uses.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from learner import vtrace


def naive_vtrace(log_rhos, discounts, rewards, values, bootstrap, rho_bar, pg_rho_bar, c_bar, lambda_=1.0):
    """Plain float64 loops over s, t and i, for [T, B] numpy arrays; ``None`` thresholds mean no clip."""
    log_rhos, discounts, rewards, values, bootstrap = (
        np.asarray(a, dtype=np.float64) for a in (log_rhos, discounts, rewards, values, bootstrap)
    )
    num_steps, batch = values.shape
    vs = np.zeros((num_steps, batch))
    pg = np.zeros((num_steps, batch))

    def clip(x, bar):
        return x if bar is None else min(bar, x)

    for b in range(batch):
        value = list(values[:, b]) + [bootstrap[b]]
        rho = [np.exp(log_rhos[t, b]) for t in range(num_steps)]
        for s in range(num_steps):
            total = value[s]
            for t in range(s, num_steps):
                weight = 1.0
                for i in range(s, t):
                    weight *= discounts[i, b] * lambda_ * clip(rho[i], c_bar)
                delta = clip(rho[t], rho_bar) * (rewards[t, b] + discounts[t, b] * value[t + 1] - value[t])
                total += weight * delta
            vs[s, b] = total
        for s in range(num_steps):
            next_vs = vs[s + 1, b] if s + 1 < num_steps else bootstrap[b]
            pg[s, b] = clip(rho[s], pg_rho_bar) * (rewards[s, b] + discounts[s, b] * next_vs - value[s])
    return vs, pg


def random_inputs(rng, num_steps, batch, with_episode_ends=True):
    """Inputs with rho spanning about 0.08..12 (both 3.7 and 2.2 really hit) and zero discounts inside."""
    log_rhos = rng.uniform(np.log(0.08), np.log(12.0), size=(num_steps, batch))
    discounts = np.full((num_steps, batch), 0.9)
    if with_episode_ends:
        discounts[rng.random((num_steps, batch)) < 0.2] = 0.0
        discounts[num_steps // 2, 0] = 0.0  # at least one episode end inside the unroll
    rewards = rng.normal(size=(num_steps, batch))
    values = rng.normal(size=(num_steps, batch))
    bootstrap = rng.normal(size=(batch,))
    return log_rhos, discounts, rewards, values, bootstrap


def to_torch(*arrays, dtype=torch.float64):
    return [torch.tensor(a, dtype=dtype) for a in arrays]


@pytest.mark.parametrize("batch", [1, 5])
@pytest.mark.parametrize(
    ("rho_bar", "pg_rho_bar", "c_bar"),
    [(3.7, 2.2, 1.0), (2.2, 3.7, 3.7), (None, None, None), (1.0, None, 2.2)],
)
@pytest.mark.parametrize("lambda_", [1.0, 0.7])
def test_matches_naive_double_loop(batch, rho_bar, pg_rho_bar, c_bar, lambda_):
    rng = np.random.default_rng(batch * 17 + int(lambda_ * 10))
    inputs = random_inputs(rng, num_steps=9, batch=batch)
    rhos = np.exp(inputs[0])
    assert rhos.min() < 0.5 and rhos.max() > 3.7  # the thresholds are really exercised
    expected_vs, expected_pg = naive_vtrace(*inputs, rho_bar, pg_rho_bar, c_bar, lambda_)
    got = vtrace.from_importance_weights(
        *to_torch(*inputs),
        clip_rho_threshold=rho_bar,
        clip_pg_rho_threshold=pg_rho_bar,
        clip_c_threshold=c_bar,
        lambda_=lambda_,
    )
    np.testing.assert_allclose(got.vs.numpy(), expected_vs, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(got.pg_advantages.numpy(), expected_pg, rtol=1e-10, atol=1e-10)


def test_float32_matches_reference():
    rng = np.random.default_rng(3)
    inputs = random_inputs(rng, num_steps=20, batch=5)
    expected_vs, expected_pg = naive_vtrace(*inputs, 3.7, 2.2, 1.0)
    got = vtrace.from_importance_weights(*to_torch(*inputs, dtype=torch.float32), 3.7, 2.2, 1.0)
    np.testing.assert_allclose(got.vs.numpy(), expected_vs, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got.pg_advantages.numpy(), expected_pg, rtol=1e-4, atol=1e-4)


def test_on_policy_equals_discounted_n_step_returns():
    """All rho = 1 and lambda = 1: v_s is the discounted return bootstrapped at T (cut at episode ends)."""
    rng = np.random.default_rng(0)
    _, discounts, rewards, values, bootstrap = random_inputs(rng, num_steps=7, batch=4)
    expected = np.zeros_like(rewards)
    for b in range(4):
        for s in range(7):
            ret, weight = 0.0, 1.0
            for t in range(s, 7):
                ret += weight * rewards[t, b]
                weight *= discounts[t, b]
            expected[s, b] = ret + weight * bootstrap[b]
    got = vtrace.from_importance_weights(*to_torch(np.zeros_like(rewards), discounts, rewards, values, bootstrap))
    np.testing.assert_allclose(got.vs.numpy(), expected, rtol=1e-10, atol=1e-10)
    next_vs = np.concatenate([expected[1:], bootstrap[None]], axis=0)
    np.testing.assert_allclose(got.pg_advantages.numpy(), rewards + discounts * next_vs - values, atol=1e-10)


def test_higher_rank_inputs_are_elementwise():
    rng = np.random.default_rng(1)
    num_steps, batch, heads = 6, 3, 2
    columns = [random_inputs(rng, num_steps, batch) for _ in range(heads)]
    stacked = [np.stack([c[k] for c in columns], axis=-1) for k in range(5)]  # [T, B, 2], bootstrap [B, 2]
    got = vtrace.from_importance_weights(*to_torch(*stacked), 3.7, 2.2, 1.0)
    assert got.vs.shape == (num_steps, batch, heads)
    for head, inputs in enumerate(columns):
        expected_vs, expected_pg = naive_vtrace(*inputs, 3.7, 2.2, 1.0)
        np.testing.assert_allclose(got.vs[..., head].numpy(), expected_vs, atol=1e-10)
        np.testing.assert_allclose(got.pg_advantages[..., head].numpy(), expected_pg, atol=1e-10)


def test_wrong_rank_raises_clear_error():
    values = torch.zeros(5, 3)
    with pytest.raises(ValueError, match="bootstrap_value"):
        vtrace.from_importance_weights(values, values, values, values, torch.zeros(5, 3))
    with pytest.raises(ValueError, match="rewards"):
        vtrace.from_importance_weights(values, values, torch.zeros(5), values, torch.zeros(3))
    with pytest.raises(ValueError, match=r"\[T, B"):
        vtrace.from_importance_weights(*[torch.zeros(5)] * 4, torch.zeros(()))


def test_no_gradient_flows_through_targets():
    values = torch.randn(4, 2, requires_grad=True)
    log_rhos = torch.randn(4, 2, requires_grad=True)
    got = vtrace.from_importance_weights(log_rhos, torch.full((4, 2), 0.9), torch.randn(4, 2), values, torch.randn(2))
    assert not got.vs.requires_grad and not got.pg_advantages.requires_grad


def test_from_logits_matches_importance_weights():
    rng = np.random.default_rng(2)
    num_steps, batch, num_actions = 8, 5, 4
    behaviour_logits = torch.tensor(rng.normal(scale=2.0, size=(num_steps, batch, num_actions)))
    target_logits = torch.tensor(rng.normal(scale=2.0, size=(num_steps, batch, num_actions)), requires_grad=True)
    actions = torch.tensor(rng.integers(0, num_actions, size=(num_steps, batch)))
    _, discounts, rewards, values, bootstrap = to_torch(*random_inputs(rng, num_steps, batch))
    got = vtrace.from_logits(behaviour_logits, target_logits, actions, discounts, rewards, values, bootstrap, 3.7, 2.2)

    def log_prob(logits):  # log softmax by hand, in float64
        logits = logits.detach().numpy()
        shifted = logits - logits.max(-1, keepdims=True)
        log_softmax = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
        return np.take_along_axis(log_softmax, actions.numpy()[..., None], -1)[..., 0]

    np.testing.assert_allclose(got.target_action_log_probs.detach().numpy(), log_prob(target_logits), atol=1e-12)
    np.testing.assert_allclose(got.behaviour_action_log_probs.numpy(), log_prob(behaviour_logits), atol=1e-12)
    log_rhos = log_prob(target_logits) - log_prob(behaviour_logits)
    expected_vs, expected_pg = naive_vtrace(log_rhos, discounts, rewards, values, bootstrap, 3.7, 2.2, 1.0)
    np.testing.assert_allclose(got.vs.numpy(), expected_vs, atol=1e-10)
    np.testing.assert_allclose(got.pg_advantages.numpy(), expected_pg, atol=1e-10)
    assert got.target_action_log_probs.requires_grad and not got.log_rhos.requires_grad


def test_long_unroll_large_batch_matches_reference_on_a_few_columns():
    """T = 80, B = 256: vectorised over B; spot-check columns against the naive loop."""
    rng = np.random.default_rng(4)
    inputs = random_inputs(rng, num_steps=80, batch=256)
    got = vtrace.from_importance_weights(*to_torch(*inputs), 3.7, 2.2, 1.0)
    columns = [0, 101, 255]
    sub = [a[:, columns] for a in inputs[:4]] + [inputs[4][columns]]
    expected_vs, expected_pg = naive_vtrace(*sub, 3.7, 2.2, 1.0)
    np.testing.assert_allclose(got.vs[:, columns].numpy(), expected_vs, atol=1e-9)
    np.testing.assert_allclose(got.pg_advantages[:, columns].numpy(), expected_pg, atol=1e-9)
