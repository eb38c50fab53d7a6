"""Several passes per batch with PPO's clipped ratio (``learner.epochs_per_batch``, ``learner.ppo_clip``):
the surrogate against a float64 loop, its equivalence to IMPALA's gradient at one pass, and what the
learner shares between passes (one V-trace, one schedule tick, one PopArt update)."""

from __future__ import annotations

import copy

import gymnasium as gym
import numpy as np
import pytest
import torch

from learner import learner as learner_module
from learner import losses
from learner import metrics as m
from learner.learner import Learner, replay
from tests.test_learner import ChainRollouts, box, build_agent, learner_config


def softmax_np(logits):
    shifted = logits - logits.max(-1, keepdims=True)
    probs = np.exp(shifted)
    return probs / probs.sum(-1, keepdims=True)


def test_clipped_surrogate_value_and_gradient_match_a_float64_loop():
    rng = np.random.default_rng(0)
    num_steps, batch, num_actions, clip = 6, 5, 3, 0.2
    logits_np = rng.normal(size=(num_steps, batch, num_actions))
    actions = rng.integers(0, num_actions, size=(num_steps, batch))
    advantages = rng.normal(size=(num_steps, batch))
    probs = softmax_np(logits_np)
    taken = np.take_along_axis(probs, actions[..., None], -1)[..., 0]
    # Ratios spread over 0.5-1.6: inside the clip range, past it on both sides, for both signs of A.
    ratios = rng.uniform(0.5, 1.6, size=(num_steps, batch))
    old_log_probs = np.log(taken) - np.log(ratios)

    logits = torch.tensor(logits_np, requires_grad=True)
    log_probs = torch.log_softmax(logits, -1).gather(-1, torch.tensor(actions)[..., None])[..., 0]
    loss = losses.clipped_policy_gradient_loss(log_probs, torch.tensor(old_log_probs), torch.tensor(advantages), clip)
    loss.backward()

    expected, expected_grad = 0.0, np.zeros_like(logits_np)
    for t in range(num_steps):
        for b in range(batch):
            r, a = ratios[t, b], advantages[t, b]
            unclipped, clipped = r * a, min(max(r, 1 - clip), 1 + clip) * a
            expected -= min(unclipped, clipped)
            if abs(r - 1) <= clip or unclipped < clipped:  # the ratio's own branch: d(r A)/dlogits
                one_hot = np.eye(num_actions)[actions[t, b]]
                expected_grad[t, b] = -a * r * (one_hot - probs[t, b])
    np.testing.assert_allclose(loss.item(), expected, rtol=1e-12)
    np.testing.assert_allclose(logits.grad.numpy(), expected_grad, atol=1e-12)
    assert 0 < np.count_nonzero(expected_grad.any(-1)) < num_steps * batch  # both cases occurred


def test_at_ratio_one_the_surrogate_has_the_policy_gradient():
    """The first pass over a batch: ``pi_old`` is the current policy, and PPO's gradient is IMPALA's."""
    rng = np.random.default_rng(1)
    logits = torch.tensor(rng.normal(size=(4, 3, 2)), requires_grad=True)
    actions = torch.tensor(rng.integers(0, 2, size=(4, 3)))
    advantages = torch.tensor(rng.normal(size=(4, 3)))

    def gradient(clip):
        logits.grad = None
        log_probs = torch.log_softmax(logits, -1).gather(-1, actions[..., None])[..., 0]
        if clip is None:
            losses.policy_gradient_loss(log_probs, advantages).backward()
        else:
            losses.clipped_policy_gradient_loss(log_probs, log_probs.detach(), advantages, clip).backward()
        return logits.grad.clone()

    torch.testing.assert_close(gradient(0.1), gradient(None), rtol=1e-12, atol=1e-12)


def test_one_pass_with_a_clip_is_the_impala_update():
    results = []
    for clip in (None, 0.2):
        agent = build_agent("real", box(3), gym.spaces.Discrete(2))
        learner = Learner(agent, learner_config(optimizer="adam", ppo_clip=clip), total_updates=10)
        rollouts = ChainRollouts("terminate", 4, 2, agent)
        for _ in range(3):
            metrics = learner.update(learner.make_batch([rollouts.rollout(5)]))
        results.append((learner.agent.state_dict(), metrics))
    (impala, impala_metrics), (clipped, clipped_metrics) = results
    for name, tensor in impala.items():
        torch.testing.assert_close(clipped[name], tensor, rtol=1e-6, atol=1e-7)
    assert clipped_metrics[m.POLICY_PPO_CLIP_FRAC] == 0.0
    # Same gradient, another value: the surrogate is - sum A at r = 1, not - sum A log pi.
    assert clipped_metrics[m.LOSS_BASELINE] == pytest.approx(impala_metrics[m.LOSS_BASELINE], rel=1e-5)


def test_epochs_share_one_vtrace_and_count_as_one_update():
    agent = build_agent("real", box(3), gym.spaces.Discrete(2))
    learner = Learner(agent, learner_config(optimizer="adam", epochs_per_batch=3, ppo_clip=0.2), total_updates=10)
    single = Learner(copy.deepcopy(agent), learner_config(optimizer="adam", ppo_clip=0.2), total_updates=10)
    batch = learner.make_batch([ChainRollouts("terminate", 4, 2, agent).rollout(5)])
    result = learner.update(batch)
    reference = single.update(batch)

    assert learner.updates == 1 and learner.version == 1 and learner.env_steps == 20
    assert all(int(state["step"]) == 3 for state in learner.optimizer.state.values())  # three Adam steps
    assert float(learner.value_head.count) == 1  # one PopArt statistics update per batch
    assert 0.0 <= result[m.POLICY_PPO_CLIP_FRAC] <= 1.0
    # The metrics are the first pass's: the same as one step from the same weights.
    for name in (m.LOSS_TOTAL, m.LOSS_PG, m.LOSS_BASELINE, m.VTRACE_VS_MEAN, m.OPTIM_GRAD_NORM):
        assert result[name] == pytest.approx(reference[name], rel=1e-5), name
    assert result[m.OPTIM_LEARNING_RATE] == reference[m.OPTIM_LEARNING_RATE]
    # The later passes moved the weights on from where the single step left them.
    weights = single.agent.state_dict()
    assert sum(float((learner.agent.state_dict()[k] - v).abs().sum()) for k, v in weights.items()) > 0


def largest_log_ratio(clip):
    """Twenty passes at a large rate over one batch: the largest |log pi_new / pi_old| on its steps,
    and the update's ``policy/ppo_clip_frac``."""
    agent = build_agent("real", box(2), gym.spaces.Discrete(2))
    config = learner_config(optimizer="adam", learning_rate=2e-2, entropy_cost=0.0, epochs_per_batch=20, ppo_clip=clip)
    learner = Learner(agent, config, total_updates=10)
    batch = learner.make_batch([ChainRollouts("bandit", 16, 2, agent).rollout(8)])
    with torch.no_grad():
        before = torch.log_softmax(replay(learner.agent, batch).policy_logits[:-1], -1)
    clip_frac = learner.update(batch)[m.POLICY_PPO_CLIP_FRAC]
    with torch.no_grad():
        after = torch.log_softmax(replay(learner.agent, batch).policy_logits[:-1], -1)
    return float((after - before).abs().max()), clip_frac


def test_the_clip_bounds_how_far_many_passes_move_the_policy():
    (unclipped, no_clip_frac), (clipped, clip_frac) = largest_log_ratio(None), largest_log_ratio(0.1)
    assert unclipped > 1.0  # twenty plain policy-gradient steps move it far
    assert clipped < 0.5 * unclipped, (clipped, unclipped)
    assert no_clip_frac == 0.0 and 0.0 < clip_frac <= 1.0  # the metric sees the clipped steps


def test_a_non_finite_later_pass_stops_the_passes_and_keeps_the_earlier_steps(monkeypatch):
    agent = build_agent("real", box(3), gym.spaces.Discrete(2))
    learner = Learner(agent, learner_config(optimizer="adam", epochs_per_batch=3, ppo_clip=0.2), total_updates=10)
    single = Learner(copy.deepcopy(agent), learner_config(optimizer="adam", ppo_clip=0.2), total_updates=10)
    batch = learner.make_batch([ChainRollouts("terminate", 4, 2, agent).rollout(5)])
    reference = single.update(batch)

    passes = []
    clean_replay = learner_module.replay

    def replay_with_a_nan_second_pass(agent, batch, collect_gates=False):
        output = clean_replay(agent, batch, collect_gates)
        passes.append(output)
        return output._replace(baseline=output.baseline * float("nan")) if len(passes) == 2 else output

    monkeypatch.setattr(learner_module, "replay", replay_with_a_nan_second_pass)
    result = learner.update(batch)

    assert len(passes) == 2  # the third pass never ran
    assert learner.skipped_steps == 1 and result[m.OPTIM_SKIPPED_STEPS] == 1.0
    assert learner.updates == 1 and learner.version == 1  # the first pass's step counts as the update
    assert all(int(state["step"]) == 1 for state in learner.optimizer.state.values())
    assert float(learner.value_head.count) == 1
    for name, tensor in single.agent.state_dict().items():  # exactly the one-pass update's weights
        torch.testing.assert_close(learner.agent.state_dict()[name], tensor, rtol=0, atol=0)
    assert result[m.LOSS_TOTAL] == pytest.approx(reference[m.LOSS_TOTAL], rel=1e-6)  # the first pass's metrics
