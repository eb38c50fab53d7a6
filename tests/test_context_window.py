"""Credit across unroll boundaries: the context window (``actors.context_length``, docs/context_window.md).

What is checked, each against something computed independently of the code under test:
- the claim the window answers: without it, the cue and the choice of a PassiveMatch episode share
  a trained window in the fraction that lockstep phase arithmetic predicts; with K >= L - 1, always;
- the worker's context: the K steps before index 0, contiguous with the trajectory, its state the
  one before them (a counting agent replays it to the stored ``initial_state`` exactly), padding at
  start-up, and the T + 1 part unchanged by the context;
- the learner: replay over K + T + 1 steps equals a step-by-step loop over ``agent.forward``
  (outputs, loss and gradient); K = 0 is today's replay; gradient reaches a context step's input,
  is exactly zero before an episode reset in the context and through start-up padding;
- the config key, and a short end-to-end run (local backend) with a resume.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import gymnasium as gym
import numpy as np
import pytest
import torch

import run_impala
from actors.trajectory import Context, Trajectory
from actors.worker import RolloutWorker
from agents import Agent
from configs.loader import ConfigError, load_config
from configs.schema import AgentConfig, CoreConfig, EnvConfig, LearnerConfig
from envs import make_env
from learner.batch import Batch, make_batch
from learner.learner import impala_loss, replay
from learner.run_dir import read_summary
from tests.counting import CountingAgent, make_counting_env

OBS_SIZE, NUM_ACTIONS = 5, 3


# ---------------------------------------------------------------------------------------- helpers
def passive_match_worker(delay: int, unroll: int, context: int, num_envs: int = 2) -> RolloutWorker:
    env_config = EnvConfig(id="gatedrl/PassiveMatch-v0", kwargs={"delay": delay})
    probe = make_env(env_config, seed=0)
    agent = Agent(
        probe.observation_space, probe.action_space, AgentConfig(mlp_sizes=(8,), core=CoreConfig(hidden_size=8))
    )
    env_fns = [functools.partial(make_env, env_config, seed) for seed in range(num_envs)]
    return RolloutWorker(env_fns, agent, unroll, seed=0, context_length=context)


def lockstep_fraction(episode_length: int, unroll: int) -> float:
    """Episodes whose first and last step share a trained window ``[jT, jT + T - 1]``.

    Every env of a worker resets at step 0 and PassiveMatch episodes all last L steps, so episode k
    starts at ``k L``; its phase in the window, ``k L mod T``, cycles through the multiples of gcd(L, T).
    """
    phases = [(k * episode_length) % unroll for k in range(unroll // math.gcd(episode_length, unroll))]
    return sum(p + episode_length <= unroll for p in phases) / len(phases)


def windowed_episodes(traj: Trajectory) -> tuple[int, int]:
    """(episodes ending on a trained step, those whose first step lies in the replayed window).

    The replayed window is the context (if any) and indices 0..T-1. The episode's first step is
    the nearest ``is_first`` at or before its last step, so it is in the window iff any is.
    """
    is_first = traj.is_first if traj.context is None else np.concatenate([traj.context.is_first, traj.is_first])
    offset = 0 if traj.context is None else traj.context.length
    ended = seen = 0
    for t, b in zip(*np.nonzero(traj.terminated[:-1]), strict=True):
        ended += 1
        seen += bool(is_first[: offset + t + 1, b].any())
    return ended, seen


def rollouts(worker: RolloutWorker, n: int) -> list[Trajectory]:
    return [worker.rollout() for _ in range(n)]


def small_agent(gate: str = "ur") -> Agent:
    torch.manual_seed(0)
    space = gym.spaces.Box(-np.inf, np.inf, (OBS_SIZE,), np.float32)
    return Agent(
        space,
        gym.spaces.Discrete(NUM_ACTIONS),
        AgentConfig(mlp_sizes=(16,), core=CoreConfig(gate=gate, hidden_size=16)),
    )


def synthetic(agent: Agent, context: int, unroll: int, batch: int, seed: int = 0) -> Trajectory:
    """Random inputs (no episode resets unless a test adds them); context state random, not zero."""
    rng = np.random.default_rng(seed)

    def steps(n: int) -> dict[str, np.ndarray]:
        return {
            "obs": rng.normal(size=(n, batch, OBS_SIZE)).astype(np.float32),
            "prev_action": rng.integers(0, NUM_ACTIONS, size=(n, batch)),
            "prev_reward": rng.normal(size=(n, batch)).astype(np.float32),
            "is_first": np.zeros((n, batch), bool),
        }

    def state() -> tuple[np.ndarray, ...]:
        return tuple(rng.normal(size=tuple(s.shape)).astype(np.float32) for s in agent.initial_state(batch))

    n = unroll + 1
    return Trajectory(
        **steps(n),
        action=rng.integers(0, NUM_ACTIONS, size=(n, batch)),
        behaviour_logits=rng.normal(size=(n, batch, NUM_ACTIONS)).astype(np.float32),
        reward=rng.normal(size=(n, batch)).astype(np.float32),
        terminated=np.zeros((n, batch), bool),
        truncated=np.zeros((n, batch), bool),
        initial_state=state(),
        context=Context(**steps(context), initial_state=state()) if context else None,
    )


def with_context(traj: Trajectory, **changes: np.ndarray) -> Trajectory:
    return dataclasses.replace(traj, context=dataclasses.replace(traj.context, **changes))


def manual_replay(agent: Agent, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """The slow reference: one ``agent.forward`` per step over context + batch; outputs of the last T + 1."""
    parts = [batch.context, batch] if batch.context is not None else [batch]
    names = ("obs", "prev_action", "prev_reward", "is_first")
    inputs = {name: torch.cat([getattr(p, name) for p in parts]) for name in names}
    state = parts[0].initial_state
    logits, baselines = [], []
    for t in range(inputs["obs"].shape[0]):
        output, state = agent(*(inputs[name][t : t + 1] for name in names), state)
        logits.append(output.policy_logits[0])
        baselines.append(output.baseline[0])
    keep = batch.unroll_length + 1
    return torch.stack(logits)[-keep:], torch.stack(baselines)[-keep:]


def loss_and_grads(agent: Agent, batch: Batch, output) -> tuple[torch.Tensor, list[torch.Tensor]]:
    loss = impala_loss(batch, output, agent.distribution, LearnerConfig(value_norm="none")).terms.total
    return loss, list(torch.autograd.grad(loss, list(agent.parameters()), allow_unused=False))


def context_obs_grad(agent: Agent, batch: Batch) -> torch.Tensor:
    """d loss / d context obs ``[K, B, O]`` through the learner's replay."""
    obs = batch.context.obs.clone().requires_grad_(True)
    batch = dataclasses.replace(batch, context=dataclasses.replace(batch.context, obs=obs))
    loss = impala_loss(batch, replay(agent, batch), agent.distribution, LearnerConfig(value_norm="none")).terms.total
    (grad,) = torch.autograd.grad(loss, [obs])
    return grad


# ------------------------------------------------------------------------ the claim, against the code
@pytest.mark.parametrize("delay, unroll", [(10, 20), (30, 20)])
def test_without_context_cue_and_choice_share_a_window_as_often_as_phase_arithmetic_says(delay, unroll):
    episode_length = delay + 4  # 3 cue steps + delay + 1 choice
    worker = passive_match_worker(delay, unroll, context=0)
    cycle = episode_length * unroll // math.gcd(episode_length, unroll) // unroll  # rollouts per phase cycle
    ended = seen = 0
    for traj in rollouts(worker, 3 * cycle):
        e, s = windowed_episodes(traj)
        ended, seen = ended + e, seen + s
    assert ended > 0
    assert seen / ended == pytest.approx(lockstep_fraction(episode_length, unroll))
    # The figure assumes a uniform phase: (T - L + 1) / T, none once L > T.
    assert lockstep_fraction(episode_length, unroll) == pytest.approx(
        max(0, unroll - episode_length + 1) / unroll, abs=0.06
    )


def test_a_context_of_at_least_l_minus_one_steps_holds_every_episode_start():
    delay, unroll = 30, 20  # L = 34 > T: no episode fits an unroll
    worker = passive_match_worker(delay, unroll, context=delay + 3)
    ended = seen = 0
    for traj in rollouts(worker, 12)[2:]:  # after start-up, when the context is real history
        e, s = windowed_episodes(traj)
        ended, seen = ended + e, seen + s
    assert ended > 0 and seen == ended


# ---------------------------------------------------------------------------------- the worker
def counting_worker(context: int, unroll: int = 5, episode_length: int | None = 4) -> RolloutWorker:
    env_fns = [functools.partial(make_counting_env, None, episode_length) for _ in range(2)]
    return RolloutWorker(env_fns, CountingAgent(), unroll, seed=3, context_length=context)


def test_context_is_the_k_steps_before_index_zero_and_its_state_replays_to_initial_state():
    K, T = 7, 5
    trajs = rollouts(counting_worker(K, T), 6)
    for traj in trajs[2:]:  # 2 rollouts = 11 steps of history >= K
        ctx = traj.context
        total = traj.obs[0, :, 1]  # obs = [step_in_episode, total_steps]
        np.testing.assert_array_equal(ctx.obs[:, :, 1], total[None] - np.arange(K, 0, -1)[:, None])
        np.testing.assert_array_equal(ctx.is_first, ctx.obs[:, :, 0] == 0)  # episode starts inside the context
        agent = CountingAgent()
        inputs = (torch.from_numpy(getattr(ctx, n)) for n in ("obs", "prev_action", "prev_reward", "is_first"))
        _, state = agent(*inputs, tuple(torch.from_numpy(s) for s in ctx.initial_state))
        np.testing.assert_array_equal(state[0].numpy(), traj.initial_state[0])


def test_context_follows_on_from_the_previous_rollout():
    K, T = 3, 5  # K <= T: the context is the previous rollout's steps T-K .. T-1
    first, second = rollouts(counting_worker(K, T), 2)
    for name in ("obs", "prev_action", "prev_reward", "is_first"):
        np.testing.assert_array_equal(getattr(second.context, name), getattr(first, name)[T - K : T])


def test_first_rollouts_pad_the_context_with_resets_and_a_zero_state():
    K, T = 8, 5
    first, second = rollouts(counting_worker(K, T), 2)
    assert first.context.length == K and first.context.is_first.all()
    assert not first.context.obs.any() and not first.context.prev_action.any() and not first.context.prev_reward.any()
    assert not first.context.initial_state[0].any()
    assert first.is_first[0].all()  # the worker's own first step resets the core after the padding
    pad = K - T  # second rollout: T real steps of history, K - T padding
    assert second.context.is_first[:pad].all() and not second.context.obs[:pad].any()
    np.testing.assert_array_equal(second.context.obs[pad:], first.obs[:T])


def test_the_context_adds_to_a_trajectory_and_changes_nothing_else():
    plain, with_ctx = rollouts(counting_worker(0), 4), rollouts(counting_worker(6), 4)
    for a, b in zip(plain, with_ctx, strict=True):
        assert a.context is None and b.context is not None
        for name in ("obs", "action", "behaviour_logits", "reward", "is_first", "terminated"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        np.testing.assert_array_equal(a.initial_state[0], b.initial_state[0])


def test_context_shapes_are_validated():
    traj = synthetic(small_agent(), context=4, unroll=3, batch=2)
    with pytest.raises(ValueError, match="Context.obs"):
        with_context(traj, obs=traj.context.obs[:, :1])
    with pytest.raises(ValueError, match="Context.is_first"):
        with_context(traj, is_first=traj.context.is_first.astype(np.int64))
    with pytest.raises(ValueError, match="Context.initial_state"):
        with_context(traj, initial_state=traj.context.initial_state[:1])
    with pytest.raises(ValueError, match="context length"):
        make_batch([traj, dataclasses.replace(traj, context=None)], "cpu")


# ---------------------------------------------------------------------------------- the learner
@pytest.mark.parametrize("gate", ["standard", "ur"])
def test_replay_with_context_equals_a_step_by_step_loop_from_the_older_state(gate):
    agent = small_agent(gate)
    traj = synthetic(agent, context=9, unroll=6, batch=3)
    is_first = traj.context.is_first.copy()
    is_first[4, 1] = True  # an episode starts inside the context for env 1
    batch = make_batch([with_context(traj, is_first=is_first)], "cpu")
    output = replay(agent, batch)
    logits, baselines = manual_replay(agent, batch)
    assert output.policy_logits.shape == (7, 3, NUM_ACTIONS)
    torch.testing.assert_close(output.policy_logits, logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(output.baseline, baselines, atol=1e-5, rtol=1e-5)
    loss, grads = loss_and_grads(agent, batch, output)
    manual_loss, manual_grads = loss_and_grads(agent, batch, output._replace(policy_logits=logits, baseline=baselines))
    torch.testing.assert_close(loss, manual_loss, atol=1e-5, rtol=1e-5)
    for grad, manual in zip(grads, manual_grads, strict=True):
        torch.testing.assert_close(grad, manual, atol=1e-5, rtol=1e-4)


def test_without_context_the_replay_is_todays():
    agent = small_agent()
    batch = make_batch([synthetic(agent, context=0, unroll=6, batch=3)], "cpu")
    assert batch.context is None
    expected, _ = agent(batch.obs, batch.prev_action, batch.prev_reward, batch.is_first, batch.initial_state)
    output = replay(agent, batch)
    assert torch.equal(output.policy_logits, expected.policy_logits) and torch.equal(output.baseline, expected.baseline)


def test_gates_of_the_context_are_not_reported():
    agent = small_agent()
    batch = make_batch([synthetic(agent, context=5, unroll=6, batch=3)], "cpu")
    output = replay(agent, batch, collect_gates=True)
    assert output.gates and all(gate.shape[0] == 7 for gate in output.gates.values())


def test_same_outputs_but_credit_crosses_the_boundary_only_with_a_context():
    """K = 0 from the state that the context leads to, against K > 0: the forward pass is the same,
    the gradient is not, because only the context lets the loss reach the steps before index 0."""
    agent = small_agent()
    ctx_batch = make_batch([synthetic(agent, context=6, unroll=5, batch=2)], "cpu")
    obs = ctx_batch.context.obs.clone().requires_grad_(True)
    ctx_batch = dataclasses.replace(ctx_batch, context=dataclasses.replace(ctx_batch.context, obs=obs))
    # What the actor stores: the state after the context steps, detached (numpy in the Trajectory).
    _, stored = agent(obs, ctx_batch.context.prev_action, ctx_batch.context.prev_reward,
                      ctx_batch.context.is_first, ctx_batch.context.initial_state)  # fmt: skip
    plain_batch = dataclasses.replace(ctx_batch, initial_state=tuple(s.detach() for s in stored), context=None)
    with_ctx, plain = replay(agent, ctx_batch), replay(agent, plain_batch)
    torch.testing.assert_close(with_ctx.policy_logits, plain.policy_logits, atol=1e-6, rtol=1e-6)
    core = [p for name, p in agent.named_parameters() if name.startswith("core.")]
    config = LearnerConfig(value_norm="none")
    grads = {}
    for name, batch, output in (("ctx", ctx_batch, with_ctx), ("plain", plain_batch, plain)):
        loss = impala_loss(batch, output, agent.distribution, config).terms.total
        grads[name] = torch.autograd.grad(loss, [*core, obs], allow_unused=True)
    assert any(not torch.allclose(a, b, atol=1e-6) for a, b in zip(grads["ctx"][:-1], grads["plain"][:-1], strict=True))
    # Into the inputs before index 0: through the context, and not at all without one.
    assert grads["ctx"][-1][0].abs().sum() > 0
    assert grads["plain"][-1] is None


def test_gradient_reaches_every_context_step_until_an_episode_reset_and_none_before_it():
    agent = small_agent()
    traj = synthetic(agent, context=8, unroll=5, batch=2)
    is_first = traj.context.is_first.copy()
    is_first[5, 1] = True  # env 1: a new episode starts at context step 5
    grad = context_obs_grad(agent, make_batch([with_context(traj, is_first=is_first)], "cpu"))
    per_step = grad.abs().sum(dim=-1)  # [K, B]
    assert (per_step[:, 0] > 0).all(), "env 0 has no reset: every context step gets credit"
    assert (per_step[:5, 1] == 0).all(), "before env 1's reset: exactly zero"
    assert (per_step[5:, 1] > 0).all()


def test_changing_a_context_obs_changes_the_weight_gradient():
    agent = small_agent()
    traj = synthetic(agent, context=6, unroll=5, batch=2)
    obs = traj.context.obs.copy()
    obs[0] += 1.0  # the oldest context step only
    batches = [make_batch([t], "cpu") for t in (traj, with_context(traj, obs=obs))]
    grads = [loss_and_grads(agent, b, replay(agent, b))[1] for b in batches]
    assert any(not torch.allclose(a, b) for a, b in zip(*grads, strict=True))


def test_start_up_padding_changes_nothing_and_gets_no_gradient():
    K, T = 6, 4
    env_config = EnvConfig(id="gatedrl/PassiveMatch-v0", kwargs={"delay": 3})
    probe = make_env(env_config, seed=0)
    torch.manual_seed(0)
    agent = Agent(
        probe.observation_space, probe.action_space, AgentConfig(mlp_sizes=(8,), core=CoreConfig(hidden_size=8))
    )
    env_fns = [functools.partial(make_env, env_config, seed) for seed in range(2)]
    first = RolloutWorker(env_fns, agent, T, seed=0, context_length=K).rollout()  # all context is padding
    padded, plain = make_batch([first], "cpu"), make_batch([dataclasses.replace(first, context=None)], "cpu")
    torch.testing.assert_close(replay(agent, padded).policy_logits, replay(agent, plain).policy_logits)
    assert (context_obs_grad(agent, padded) == 0).all()


# ---------------------------------------------------------------------------------- config and a run
def test_config_key_defaults_to_zero_and_refuses_negative_values():
    assert load_config(None, []).actors.context_length == 0
    assert load_config(None, ["actors.context_length=40"]).actors.context_length == 40
    with pytest.raises(ConfigError, match=r"actors\.context_length.*-1.*out of range"):
        load_config(None, ["actors.context_length=-1"])
    with pytest.raises(ConfigError, match=r"actors\.context_length.*integer"):
        load_config(None, ["actors.context_length=2.5"])


def test_a_short_local_run_with_context_trains_and_resumes(tmp_path):
    overrides = [
        "env.id=gatedrl/PassiveMatch-v0", "env.kwargs.delay=8", "agent.mlp_sizes=[16]",
        "agent.core.hidden_size=16", "actors.backend=local", "actors.num_actors=1", "actors.envs_per_actor=4",
        "actors.unroll_length=5", "actors.context_length=12", "learner.batch_size=2",
        f"run.log_dir={tmp_path}", "run.name=ctx", "run.total_env_steps=400",
    ]  # fmt: skip
    assert run_impala.main(overrides) == 0
    run_dir = tmp_path / "ctx"
    assert read_summary(run_dir)["env_steps"] >= 400
    assert "context_length: 12" in (run_dir / "config.yaml").read_text()
    assert run_impala.main(["--resume", str(run_dir), "run.total_env_steps=800"]) == 0
    assert read_summary(run_dir)["env_steps"] >= 800


@pytest.mark.ray
def test_the_ray_pool_carries_the_context():
    import ray

    from actors.pool import RayActorPool
    from configs.schema import ActorsConfig

    config = ActorsConfig(num_actors=1, envs_per_actor=2, unroll_length=5, context_length=3, num_cpus_per_actor=0.5)
    ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        factory = functools.partial(make_counting_env, episode_length=4)
        with RayActorPool(factory, CountingAgent, config, discount=0.9, seed=0) as pool:
            pool.publish_weights(0, CountingAgent().state_dict())
            first, second = pool.next_trajectories(1) + pool.next_trajectories(1)
    finally:
        ray.shutdown()
    assert first.context.length == second.context.length == 3
    np.testing.assert_array_equal(second.context.obs, first.obs[2:5])
