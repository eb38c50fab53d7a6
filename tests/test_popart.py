"""PopArt (learner/popart.py, agents/heads.ValueHead) against a float64 reference written from the equations.

mean' = (1 - beta) mean + beta E[vs],  sq' = (1 - beta) sq + beta E[vs^2],  beta = max(step, 1/n)
std'  = clip(sqrt(sq' - mean'^2), min_std, 1e6)
w' = w std / std',  b' = (std b + mean - mean') / std'     (so that std' (w'h + b') + mean' = std (wh + b) + mean)
"""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest
import torch

import run_impala
from agents import Agent
from agents.heads import ValueHead
from configs.schema import AgentConfig, CoreConfig, LearnerConfig, PopArtConfig
from learner.batch import make_batch
from learner.learner import Learner, impala_loss
from learner.popart import update_value_head
from learner.run_dir import latest_checkpoint
from tests.test_learner import ChainRollouts
from tests.test_vtrace import naive_vtrace


def reference_popart(weight, bias, targets_per_update, step_size, min_std):
    """Plain float64 loop over updates: the statistics and the preserved linear layer after each."""
    mean, sq, std = 0.0, 1.0, 1.0
    w, b = np.array(weight, np.float64), float(bias)
    history = []
    for n, targets in enumerate(targets_per_update, start=1):
        beta = max(step_size, 1.0 / n)
        targets = np.asarray(targets, np.float64)
        new_mean = (1 - beta) * mean + beta * targets.mean()
        sq = (1 - beta) * sq + beta * (targets**2).mean()
        new_std = min(max(np.sqrt(max(sq - new_mean**2, 0.0)), min_std), 1e6)
        w, b = w * std / new_std, (std * b + mean - new_mean) / new_std
        mean, std = new_mean, new_std
        history.append((mean, std, w.copy(), b))
    return history


def head_with(weight, bias):
    head = ValueHead(len(weight))
    with torch.no_grad():
        head.linear.weight.copy_(torch.tensor(np.asarray(weight)[None], dtype=torch.float32))
        head.linear.bias.fill_(bias)
    return head


@pytest.mark.parametrize("scale", [1.0, 100.0, 1e-3])
def test_statistics_and_rescaled_layer_match_the_float64_reference(scale):
    rng = np.random.default_rng(0)
    weight, bias = rng.normal(size=4), 0.3
    # Non-stationary targets: the mean drifts upwards, as returns do while an agent improves.
    updates = [scale * (rng.normal(loc=0.2 * k, scale=1.0 + 0.1 * k, size=(5, 3))) for k in range(30)]
    expected = reference_popart(weight, bias, updates, step_size=0.05, min_std=1e-4)
    head = head_with(weight, bias)
    for targets, (mean, std, w, b) in zip(updates, expected, strict=True):
        update_value_head(head, torch.tensor(targets, dtype=torch.float32), step_size=0.05, min_std=1e-4)
        np.testing.assert_allclose(float(head.mean), mean, rtol=1e-4, atol=1e-6 * scale)
        np.testing.assert_allclose(float(head.std), std, rtol=1e-4)
        np.testing.assert_allclose(head.linear.weight.detach().numpy()[0], w, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(head.linear.bias.item(), b, rtol=1e-4, atol=1e-5)
    assert int(head.count) == len(updates)


def test_the_unnormalised_value_is_unchanged_by_a_statistics_update():
    """PopArt's invariant: V(h) before == V(h) after, for every h, however far the statistics move."""
    rng = np.random.default_rng(1)
    head = head_with(rng.normal(size=8), -0.7)
    h = torch.tensor(rng.normal(size=(64, 8)), dtype=torch.float32)
    for targets in ([1000.0, 1200.0, 900.0], [-5.0, 5.0], [0.0, 0.0, 0.0], [3e4]):
        before, old_mean = head(h).detach().double().numpy(), float(head.mean)
        update_value_head(head, torch.tensor(targets), step_size=0.5, min_std=1e-2)
        after = head(h).detach().double().numpy()
        # float32 resolves V only to ~1e-7 of the largest term it adds (the means, std * (w.h + b)).
        magnitude = abs(old_mean) + abs(float(head.mean)) + np.abs(before).max()
        np.testing.assert_allclose(after, before, rtol=0, atol=1e-6 * magnitude)
    assert float(head.mean) > 100  # the statistics really moved


def test_a_statistics_update_keeps_the_value_of_a_head_with_hidden_layers():
    """With ``agent.head_sizes`` PopArt rescales the last linear map only; V(h) still stays put."""
    torch.manual_seed(0)
    head = ValueHead(6, hidden_sizes=(5,))
    hidden_before = [p.detach().clone() for p in head.hidden.parameters()]
    h = torch.randn(32, 6)
    before = head(h).detach().double().numpy()
    update_value_head(head, torch.tensor([40.0, 60.0, 55.0]), step_size=0.5, min_std=1e-2)
    assert float(head.mean) > 40
    np.testing.assert_allclose(
        head(h).detach().double().numpy(), before, rtol=0, atol=1e-5 * (60 + np.abs(before).max())
    )
    for old, new in zip(hidden_before, head.hidden.parameters(), strict=True):
        torch.testing.assert_close(old, new, rtol=0, atol=0)


def test_first_updates_average_exactly_then_follow_exponentially():
    head = ValueHead(2)
    for value in (10.0, 20.0, 30.0):  # step 0.01: n <= 100 averages exactly
        update_value_head(head, torch.full((4,), value), step_size=0.01, min_std=1e-2)
    assert float(head.mean) == pytest.approx(20.0)
    assert float(head.std) == pytest.approx(np.std([10.0, 20.0, 30.0]), rel=1e-5)
    fast = ValueHead(2)
    for _ in range(3):
        update_value_head(fast, torch.zeros(4), step_size=0.5, min_std=1e-2)
    update_value_head(fast, torch.full((4,), 8.0), step_size=0.5, min_std=1e-2)
    assert float(fast.mean) == pytest.approx(4.0)  # beta = 0.5 once n > 2


def test_constant_targets_clip_the_std_at_its_floor():
    head = ValueHead(3)
    update_value_head(head, torch.zeros(10), step_size=1.0, min_std=0.05)
    assert float(head.std) == pytest.approx(0.05) and float(head.mean) == 0.0


def chain_batch(agent, seed=1):
    traj = ChainRollouts("terminate", 3, 3, agent, seed=seed).rollout(6)
    return traj, make_batch([traj], "cpu")


def real_agent(hidden=8):
    torch.manual_seed(0)
    config = AgentConfig(mlp_sizes=(8,), core=CoreConfig(cell="lstm", gate="ur", hidden_size=hidden))
    return Agent(gym.spaces.Box(0.0, 1.0, shape=(3,), dtype=np.float32), gym.spaces.Discrete(3), config)


def reference_vtrace(output, traj, discount):
    """The float64 reference of the batch's V-trace under ``output`` (the chain's behaviour policy is
    uniform over 3 actions; every threshold 1): ``(values [T+1, B], log pi(a_t) [T, B], vs, pg advantages)``."""
    values = output.baseline.detach().double().numpy()
    log_probs = torch.log_softmax(output.policy_logits[:-1].detach().double(), -1).numpy()
    taken = np.take_along_axis(log_probs, traj.action[:-1][..., None], -1)[..., 0]
    discounts = discount * (1.0 - (traj.terminated[:-1] | traj.truncated[:-1]))
    vs, pg = naive_vtrace(taken - np.log(1 / 3), discounts, traj.reward[:-1], values[:-1], values[-1], 1.0, 1.0, 1.0)
    return values, taken, vs, pg


def test_loss_regresses_normalised_values_and_divides_advantages_by_std():
    agent = real_agent()
    with torch.no_grad():
        agent.value_head.mean.fill_(2.5)
        agent.value_head.std.fill_(4.0)
    traj, batch = chain_batch(agent)
    config = LearnerConfig(device="cpu", discount=0.9, baseline_cost=0.5, entropy_cost=0.0)
    output, _ = agent(batch.obs, batch.prev_action, batch.prev_reward, batch.is_first, batch.initial_state)
    loss = impala_loss(batch, output, agent.distribution, config, agent.value_head)

    values, taken, vs, pg = reference_vtrace(output, traj, discount=0.9)
    expected_baseline = 0.5 * 0.5 * np.sum(((vs - 2.5) / 4.0 - (values[:-1] - 2.5) / 4.0) ** 2)
    expected_pg = -np.sum(taken * pg / 4.0)
    np.testing.assert_allclose(loss.terms.baseline.item(), expected_baseline, rtol=1e-4)
    np.testing.assert_allclose(loss.terms.pg.item(), expected_pg, rtol=1e-4)
    np.testing.assert_allclose(loss.vtrace.vs.numpy(), vs, atol=1e-4)  # V-trace itself runs on returns
    np.testing.assert_allclose(loss.pg_advantages.numpy(), pg / 4.0, atol=1e-5)


def test_the_advantage_rms_metric_is_that_of_the_advantages_the_policy_term_weighs():
    """``vtrace/advantage_rms`` is in PopArt's units (divided by its std); ``vtrace/advantage_mean`` in returns."""
    agent = real_agent()
    with torch.no_grad():
        agent.value_head.mean.fill_(-1.0)
        agent.value_head.std.fill_(3.0)
    traj, batch = chain_batch(agent, seed=2)
    with torch.no_grad():
        output, _ = agent(batch.obs, batch.prev_action, batch.prev_reward, batch.is_first, batch.initial_state)
    *_, pg = reference_vtrace(output, traj, discount=0.9)
    config = LearnerConfig(device="cpu", optimizer="adam", learning_rate=1e-12, discount=0.9)
    metrics = Learner(agent, config, total_updates=10).update(batch)
    assert metrics["vtrace/advantage_rms"] == pytest.approx(np.sqrt(np.mean((pg / 3.0) ** 2)), rel=1e-4)
    assert metrics["vtrace/advantage_mean"] == pytest.approx(np.mean(pg), rel=1e-4, abs=1e-6)


def test_an_update_moves_the_statistics_without_moving_the_baseline():
    """With a vanishing learning rate only PopArt acts: the statistics follow vs, V(x) stays put."""
    agent = real_agent()
    _, batch = chain_batch(agent)
    config = LearnerConfig(device="cpu", optimizer="adam", learning_rate=1e-12, discount=0.9)
    learner = Learner(agent, config, total_updates=10)

    def baseline():
        with torch.no_grad():
            output, _ = agent(batch.obs, batch.prev_action, batch.prev_reward, batch.is_first, batch.initial_state)
        return output.baseline.double().numpy()

    before = baseline()
    metrics = learner.update(batch)
    assert int(agent.value_head.count) == 1
    assert metrics["value/norm_mean"] == pytest.approx(metrics["vtrace/vs_mean"], rel=1e-5)  # n = 1: the batch mean
    np.testing.assert_allclose(baseline(), before, rtol=1e-4, atol=1e-5)


def test_value_norm_none_leaves_the_head_a_plain_linear_map():
    agent = real_agent()
    _, batch = chain_batch(agent)
    learner = Learner(agent, LearnerConfig(device="cpu", value_norm="none"), total_updates=10)
    metrics = learner.update(batch)
    assert float(agent.value_head.mean) == 0.0 and float(agent.value_head.std) == 1.0
    assert (metrics["value/norm_mean"], metrics["value/norm_std"]) == (0.0, 1.0)


def test_statistics_travel_with_the_weights_and_the_checkpoint(tmp_path):
    agent = real_agent()
    _, batch = chain_batch(agent)
    config = LearnerConfig(device="cpu", popart=PopArtConfig(step_size=0.5))
    learner = Learner(agent, config, total_updates=10)
    for _ in range(3):
        learner.update(batch)
    _, weights = learner.get_weights()
    actor_agent = real_agent()
    actor_agent.load_state_dict(weights)
    assert float(actor_agent.value_head.std) == float(agent.value_head.std) != 1.0
    learner.save_checkpoint(tmp_path / "ckpt.pt")
    restored = Learner(real_agent(), config, total_updates=10)
    restored.load_checkpoint(tmp_path / "ckpt.pt")
    for name in ("mean", "mean_sq", "std", "count"):
        assert float(getattr(restored.agent.value_head, name)) == float(getattr(agent.value_head, name)), name


def test_popart_needs_an_agent_with_a_value_head():
    class Headless(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(2, 2)

    with pytest.raises(ValueError, match="learner.value_norm=none"):
        Learner(Headless(), LearnerConfig(device="cpu"), total_updates=1)
    Learner(Headless(), dataclasses.replace(LearnerConfig(device="cpu"), value_norm="none"), total_updates=1)


@pytest.mark.slow
def test_statistics_continue_across_resume(tmp_path):
    """Every successful update folds one batch into the statistics, across a --resume: count == updates."""
    run_dir = tmp_path / "runs" / "popart"
    common = ["actors.backend=local", "actors.num_actors=1", "actors.envs_per_actor=2", "learner.batch_size=1",
              "agent.core.hidden_size=8", "agent.mlp_sizes=[8]", "env.kwargs.delay=2"]  # fmt: skip
    assert run_impala.main([*common, f"run.log_dir={tmp_path / 'runs'}", "run.name=popart",
                            "run.total_env_steps=400"]) == 0  # fmt: skip
    first = torch.load(latest_checkpoint(run_dir), weights_only=True)
    assert run_impala.main(["--resume", str(run_dir), "run.total_env_steps=800"]) == 0
    second = torch.load(latest_checkpoint(run_dir), weights_only=True)
    for state in (first, second):
        assert int(state["agent"]["heads.baseline.count"]) == state["counters"]["updates"] > 0
    assert second["counters"]["updates"] > first["counters"]["updates"]
