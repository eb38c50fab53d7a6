"""The Learner: batching, the loss wiring (termination vs truncation), skipping, checkpoints, weights, learning.

Every agent-level test runs on the tiny test agent and on the real ``agents.Agent``.
"""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest
import torch

from actors.trajectory import Trajectory
from configs.schema import AgentConfig, CoreConfig, LearnerConfig
from learner import metrics as m
from learner.batch import make_batch
from learner.learner import Learner, impala_loss, step_discounts
from tests.test_vtrace import naive_vtrace
from tests.tiny_agent import TinyAgent


def real_cell() -> str:
    """The real agent's core: an LSTM once memory_cells offers make_cell, else the memoryless control."""
    import memory_cells

    return "lstm" if hasattr(memory_cells, "make_cell") else "none"


AGENT_KINDS = ["tiny", "real"]


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models on a shared, loaded machine: intra-op threads only spin against each other."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def build_agent(
    kind,
    obs_space,
    action_space,
    hidden=16,
    gate="standard",
    seed=0,
    head_sizes=(),
    prev_action_reward=True,
    layer_norm=False,
    critic="shared",
):
    torch.manual_seed(seed)
    cell = "lstm" if kind == "tiny" else real_cell()
    core = CoreConfig(cell=cell, gate=gate, hidden_size=hidden)
    config = AgentConfig(
        mlp_sizes=(16,),
        core=core,
        head_sizes=head_sizes,
        prev_action_reward=prev_action_reward,
        layer_norm=layer_norm,
        critic=critic,
    )
    if kind == "tiny":
        return TinyAgent(obs_space, action_space, config)
    from agents import Agent

    return Agent(obs_space, action_space, config)


class ChainRollouts:
    """Vector envs over a K-state chain with a fixed uniform behaviour policy, emitted in the
    Trajectory layout (index 0 of each rollout repeats the last step of the previous one).

    ``mode``: ``"terminate"`` ends an episode after K steps; ``"truncate"`` cuts it there with
    ``truncated`` and adds ``discount * V_inf`` to the reward, as the actors do; ``"bandit"`` makes
    every step a one-step episode in a random context with reward 1 for ``OPTIMAL[context]``.
    """

    OPTIMAL = (2, 0)

    def __init__(self, mode, batch, num_actions, agent, num_states=3, discount=0.5, seed=0):
        self.mode, self.batch, self.num_actions, self.discount = mode, batch, num_actions, discount
        self.num_states = 2 if mode == "bandit" else num_states
        self.rng = np.random.default_rng(seed)
        self.position = self.rng.integers(0, self.num_states, size=batch) if mode == "bandit" else np.zeros(batch, int)
        self.state = tuple(t.numpy() for t in agent.initial_state(batch))
        self.last = self._step_inputs(np.ones(batch, bool), np.zeros(batch, np.int64), np.zeros(batch, np.float32))

    def _step_inputs(self, is_first, prev_action, prev_reward):
        obs = np.eye(self.num_states, dtype=np.float32)[self.position]
        action = self.rng.integers(0, self.num_actions, size=self.batch)
        return {
            "obs": obs,
            "is_first": is_first,
            "prev_action": prev_action,
            "prev_reward": prev_reward,
            "action": action,
        }

    def _env_step(self, action):
        """Reward, terminated, truncated of ``action`` in the current positions; advances them."""
        if self.mode == "bandit":
            reward = (action == np.array(self.OPTIMAL)[self.position]).astype(np.float32)
            self.position = self.rng.integers(0, 2, size=self.batch)
            return reward, np.ones(self.batch, bool), np.zeros(self.batch, bool)
        last = self.position == self.num_states - 1
        reward = np.ones(self.batch, np.float32)
        if self.mode == "truncate":
            reward = reward + last * self.discount / (1 - self.discount)  # + discount * V_inf(final obs)
        self.position = np.where(last, 0, self.position + 1)
        return reward, last & (self.mode == "terminate"), last & (self.mode == "truncate")

    def rollout(self, unroll_length):
        steps = [self.last]
        for _ in range(unroll_length):
            current = steps[-1]
            reward, terminated, truncated = self._env_step(current["action"])
            current.update(reward=reward, terminated=terminated, truncated=truncated)
            done = terminated | truncated
            steps.append(self._step_inputs(done, np.where(done, 0, current["action"]), np.where(done, 0, reward)))
        final = steps[-1]
        # Step T's outcome belongs to the next rollout; fill it with the values that rollout will compute.
        self.last = dict(final)
        final.update(reward=np.zeros(self.batch, np.float32), terminated=np.zeros(self.batch, bool))
        final["truncated"] = np.zeros(self.batch, bool)
        stacked = {key: np.stack([s[key] for s in steps]) for key in steps[0]}
        stacked["reward"] = stacked["reward"].astype(np.float32)
        stacked["prev_reward"] = stacked["prev_reward"].astype(np.float32)
        logits = np.zeros((unroll_length + 1, self.batch, self.num_actions), np.float32)
        return Trajectory(**stacked, behaviour_logits=logits, initial_state=self.state)


def learner_config(**overrides):
    return dataclasses.replace(LearnerConfig(device="cpu"), **overrides)


def box(n):
    return gym.spaces.Box(0.0, 1.0, shape=(n,), dtype=np.float32)


def test_step_discounts_zero_after_terminated_or_truncated():
    terminated = torch.tensor([[False, True], [False, False]])
    truncated = torch.tensor([[True, False], [False, False]])
    np.testing.assert_allclose(step_discounts(terminated, truncated, 0.9).numpy(), [[0.0, 0.0], [0.9, 0.9]])


@pytest.mark.parametrize("kind", AGENT_KINDS)
def test_loss_uses_termination_and_truncation_as_the_contract_says(kind):
    """A batch with a terminated step (column 0) and a truncated step (column 1) against the naive V-trace."""
    agent = build_agent(kind, box(3), gym.spaces.Discrete(3))
    traj = ChainRollouts("terminate", 2, 3, agent, seed=1).rollout(6)
    terminated = np.zeros_like(traj.terminated)
    truncated = np.zeros_like(traj.truncated)
    terminated[2, 0] = True
    truncated[4, 1] = True
    terminated[6, :] = True  # step T: never trained, must not matter
    traj = dataclasses.replace(traj, terminated=terminated, truncated=truncated)
    batch = make_batch([traj], "cpu")
    config = learner_config(discount=0.9, vtrace=dataclasses.replace(LearnerConfig().vtrace, clip_rho_threshold=3.7))
    output, _ = agent(batch.obs, batch.prev_action, batch.prev_reward, batch.is_first, batch.initial_state)
    loss = impala_loss(batch, output, agent.distribution, config)

    discounts = np.full((6, 2), 0.9)
    discounts[2, 0] = discounts[4, 1] = 0.0
    log_probs = torch.log_softmax(output.policy_logits[:-1].double(), -1).detach().numpy()
    actions = traj.action[:-1]
    log_rhos = np.take_along_axis(log_probs, actions[..., None], -1)[..., 0] - np.log(1 / 3)
    values = output.baseline.detach().double().numpy()
    expected_vs, expected_pg = naive_vtrace(
        log_rhos, discounts, traj.reward[:-1], values[:-1], values[-1], 3.7, 1.0, 1.0
    )
    np.testing.assert_allclose(loss.vtrace.vs.numpy(), expected_vs, atol=1e-5)
    np.testing.assert_allclose(loss.vtrace.pg_advantages.numpy(), expected_pg, atol=1e-5)


def test_make_batch_concatenates_along_batch_and_copies():
    agent = build_agent("tiny", box(3), gym.spaces.Discrete(2))
    first = ChainRollouts("terminate", 2, 2, agent, seed=0).rollout(4)
    second = ChainRollouts("terminate", 3, 2, agent, seed=1).rollout(4)
    second = dataclasses.replace(second, initial_state=(np.arange(48, dtype=np.float32).reshape(3, 16),))
    batch = make_batch([first, second], "cpu")
    assert batch.obs.shape == (5, 5, 3) and batch.num_steps == 20 and batch.unroll_length == 4
    np.testing.assert_array_equal(batch.action.numpy(), np.concatenate([first.action, second.action], axis=1))
    np.testing.assert_array_equal(batch.initial_state[0][2:].numpy(), second.initial_state[0])
    assert batch.is_first.dtype == torch.bool and batch.prev_action.dtype == torch.int64
    first.reward[0, 0] = 123.0
    assert batch.reward[0, 0] != 123.0  # the batch owns its memory
    with pytest.raises(ValueError, match="field obs"):
        make_batch([first, ChainRollouts("terminate", 2, 2, agent).rollout(5)], "cpu")


@pytest.mark.parametrize("kind", AGENT_KINDS)
def test_learner_replays_the_stored_initial_state_over_all_steps(kind, monkeypatch):
    agent = build_agent(kind, box(3), gym.spaces.Discrete(2))
    rollouts = ChainRollouts("terminate", 4, 2, agent)
    traj = rollouts.rollout(5)
    traj = dataclasses.replace(traj, initial_state=tuple(np.full_like(s, 0.25) for s in traj.initial_state))
    learner = Learner(agent, learner_config(), total_updates=10)
    seen = {}
    original = type(agent).forward

    def spy(self, obs, prev_action, prev_reward, is_first, state, collect_gates=False):
        seen["time"], seen["state"] = obs.shape[0], [s.clone() for s in state]
        return original(self, obs, prev_action, prev_reward, is_first, state, collect_gates)

    monkeypatch.setattr(type(agent), "forward", spy)
    learner.update(learner.make_batch([traj]))
    assert seen["time"] == 6  # T + 1 steps: the last one only bootstraps
    assert len(seen["state"]) == len(traj.initial_state)
    for got, stored in zip(seen["state"], traj.initial_state, strict=True):
        np.testing.assert_array_equal(got.numpy(), stored)


@pytest.mark.parametrize("kind", AGENT_KINDS)
def test_update_reports_metrics_and_gates(kind):
    agent = build_agent(kind, box(3), gym.spaces.Discrete(2))
    learner = Learner(agent, learner_config(), total_updates=10)
    batch = learner.make_batch([ChainRollouts("terminate", 4, 2, agent).rollout(5)])
    result, gates = learner.update(batch, collect_gates=True)
    assert tuple(result) == m.LEARNER_METRICS
    assert all(np.isfinite(v) for v in result.values())
    assert result[m.OPTIM_LEARNING_RATE] == pytest.approx(6e-4)
    np.testing.assert_allclose(
        result[m.LOSS_TOTAL], result[m.LOSS_PG] + result[m.LOSS_BASELINE] + result[m.LOSS_ENTROPY], rtol=1e-5
    )
    for gate in gates.values():
        assert gate.device.type == "cpu" and gate.shape == (5, 4, 16)
    if kind == "tiny" or real_cell() != "none":
        assert "f" in gates
    assert learner.version == 1 and learner.env_steps == 20
    assert learner.update(batch)[m.OPTIM_LEARNING_RATE] == pytest.approx(6e-4 * 0.9)  # linear decay


def test_update_multidiscrete_actions():
    space = gym.spaces.MultiDiscrete([2, 3])
    agent = build_agent("tiny", box(3), space)
    traj = ChainRollouts("terminate", 3, 2, build_agent("tiny", box(3), gym.spaces.Discrete(2))).rollout(4)
    rng = np.random.default_rng(0)
    actions = np.stack([rng.integers(0, 2, (5, 3)), rng.integers(0, 3, (5, 3))], axis=-1)
    traj = dataclasses.replace(
        traj, action=actions, prev_action=actions, behaviour_logits=np.zeros((5, 3, 5), np.float32)
    )
    result = Learner(agent, learner_config(), 10).update(make_batch([traj], "cpu"))
    # Uniform behaviour over 2 x 3 joint actions: rho = pi(a) * 6 under the product policy.
    assert np.isfinite(result[m.LOSS_TOTAL]) and result[m.VTRACE_RHO_MEAN] > 0


def snapshot(learner):
    params = {k: v.clone() for k, v in learner.agent.state_dict().items()}
    optim = learner.optimizer.state_dict()
    optim_state = {
        k: {n: t.clone() if torch.is_tensor(t) else t for n, t in s.items()} for k, s in optim["state"].items()
    }
    return params, optim_state, [dict(g) for g in optim["param_groups"]]


@pytest.mark.parametrize("kind", AGENT_KINDS)
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_step_is_skipped_and_changes_nothing(kind, bad):
    agent = build_agent(kind, box(3), gym.spaces.Discrete(2))
    learner = Learner(agent, learner_config(), total_updates=10)
    rollouts = ChainRollouts("terminate", 4, 2, agent)
    learner.update(learner.make_batch([rollouts.rollout(5)]))  # non-empty optimiser state
    before = snapshot(learner)
    traj = rollouts.rollout(5)
    traj.reward[2, 1] = bad
    result = learner.update(learner.make_batch([traj]))
    after = snapshot(learner)
    assert result[m.OPTIM_SKIPPED_STEPS] == 1 and learner.updates == 1 and learner.version == 1
    for name, tensor in before[0].items():
        torch.testing.assert_close(after[0][name], tensor, rtol=0, atol=0)
    for key, state in before[1].items():
        for name, value in state.items():
            torch.testing.assert_close(after[1][key][name], value, rtol=0, atol=0)
    assert after[2] == before[2]
    assert learner.update(learner.make_batch([rollouts.rollout(5)]))[m.OPTIM_SKIPPED_STEPS] == 1  # recovers


@pytest.mark.parametrize("kind", AGENT_KINDS)
def test_checkpoint_round_trip_resumes_exactly(kind, tmp_path):
    agent = build_agent(kind, box(3), gym.spaces.Discrete(2))
    learner = Learner(agent, learner_config(), total_updates=10)
    rollouts = ChainRollouts("terminate", 4, 2, agent)
    batches = [learner.make_batch([rollouts.rollout(5)]) for _ in range(3)]
    learner.update(batches[0])
    learner.save_checkpoint(tmp_path / "ckpt.pt")
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]  # no temporary file left
    restored = Learner(build_agent(kind, box(3), gym.spaces.Discrete(2), seed=1), learner_config(), total_updates=10)
    restored.load_checkpoint(tmp_path / "ckpt.pt")
    assert (restored.updates, restored.env_steps, restored.version) == (1, 20, 1)
    for batch in batches[1:]:
        np.testing.assert_allclose(restored.update(batch)[m.LOSS_TOTAL], learner.update(batch)[m.LOSS_TOTAL], rtol=1e-6)
    for (name, a), b in zip(learner.get_weights()[1].items(), restored.get_weights()[1].values(), strict=True):
        torch.testing.assert_close(a, b, msg=name)


def test_checkpoint_from_another_model_fails_naming_the_mismatch(tmp_path):
    learner = Learner(build_agent("tiny", box(3), gym.spaces.Discrete(2)), learner_config(), 10)
    learner.save_checkpoint(tmp_path / "ckpt.pt")
    wider = Learner(build_agent("tiny", box(3), gym.spaces.Discrete(2), hidden=8), learner_config(), 10)
    with pytest.raises(ValueError, match="core.hidden_size is 16 in the checkpoint, 8 here"):
        wider.load_checkpoint(tmp_path / "ckpt.pt")
    other_gate = Learner(build_agent("tiny", box(3), gym.spaces.Discrete(2), gate="ur"), learner_config(), 10)
    with pytest.raises(ValueError, match="core.gate is 'standard' in the checkpoint, 'ur' here"):
        other_gate.load_checkpoint(tmp_path / "ckpt.pt")
    adam = Learner(build_agent("tiny", box(3), gym.spaces.Discrete(2)), learner_config(optimizer="adam"), 10)
    with pytest.raises(ValueError, match="optimizer"):
        adam.load_checkpoint(tmp_path / "ckpt.pt")
    real = Learner(build_agent("real", box(3), gym.spaces.Discrete(2)), learner_config(), 10)
    with pytest.raises(ValueError, match="parameter"):
        real.load_checkpoint(tmp_path / "ckpt.pt")
    real.save_checkpoint(tmp_path / "real.pt")
    # The real agent records its config, so even two gates with the same parameters are told apart.
    real_ur = Learner(build_agent("real", box(3), gym.spaces.Discrete(2), gate="ur"), learner_config(), 10)
    with pytest.raises(ValueError, match="core.gate is 'standard' in the checkpoint, 'ur' here"):
        real_ur.load_checkpoint(tmp_path / "real.pt")
    # Hidden head layers are another model; without them the record is the one written before they existed.
    assert "head_sizes" not in real.metadata()["agent_config"]
    deep_heads = Learner(build_agent("real", box(3), gym.spaces.Discrete(2), head_sizes=(8,)), learner_config(), 10)
    with pytest.raises(ValueError, match=r"head_sizes is None in the checkpoint, \(8,\) here"):
        deep_heads.load_checkpoint(tmp_path / "real.pt")
    # So are an agent without the previous action and reward as inputs (the core's input is narrower).
    assert "prev_action_reward" not in real.metadata()["agent_config"]
    blind = Learner(build_agent("real", box(3), gym.spaces.Discrete(2), prev_action_reward=False), learner_config(), 10)
    with pytest.raises(ValueError, match="prev_action_reward is None in the checkpoint, False here"):
        blind.load_checkpoint(tmp_path / "real.pt")
    # And a torso with LayerNorm (its norm's parameters differ too; the config names the difference first).
    assert "layer_norm" not in real.metadata()["agent_config"]
    normed = Learner(build_agent("real", box(3), gym.spaces.Discrete(2), layer_norm=True), learner_config(), 10)
    assert normed.metadata()["agent_config"]["layer_norm"] is True
    with pytest.raises(ValueError, match="layer_norm is None in the checkpoint, True here"):
        normed.load_checkpoint(tmp_path / "real.pt")
    # And a critic with its own torso and core.
    assert "critic" not in real.metadata()["agent_config"]
    apart = Learner(build_agent("real", box(3), gym.spaces.Discrete(2), critic="separate"), learner_config(), 10)
    with pytest.raises(ValueError, match="critic is None in the checkpoint, 'separate' here"):
        apart.load_checkpoint(tmp_path / "real.pt")


@pytest.mark.parametrize("recorded", ["absent", "at_old_value"])
def test_a_checkpoint_recording_a_newer_key_at_its_old_value_or_not_at_all_loads(recorded, tmp_path):
    """Checkpoints written before ``agent.critic`` existed lack the key; those written while it was recorded
    at its old value ('shared') have it: both are the model of today's default and resume (2026-12-08: the
    delay-200 runs of 2026-12-07 could not be resumed for a longer budget)."""
    learner = Learner(build_agent("real", box(3), gym.spaces.Discrete(2)), learner_config(), 10)
    state = learner.state_dict()
    config = state["metadata"]["agent_config"]
    config.pop("critic", None)
    if recorded == "at_old_value":
        config.update(critic="shared", layer_norm=False, prev_action_reward=True, head_sizes=[])
    fresh = Learner(build_agent("real", box(3), gym.spaces.Discrete(2), seed=1), learner_config(), 10)
    fresh.load_state_dict(state)
    for got, saved in zip(fresh.agent.state_dict().values(), learner.agent.state_dict().values(), strict=True):
        torch.testing.assert_close(got, saved)


def test_crash_while_saving_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    learner = Learner(build_agent("tiny", box(3), gym.spaces.Discrete(2)), learner_config(), 10)
    path = tmp_path / "ckpt.pt"
    learner.save_checkpoint(path)
    good = path.read_bytes()

    def crash(obj, handle):
        handle.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        learner.save_checkpoint(path)
    assert path.read_bytes() == good and [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]


def test_get_weights_are_cpu_copies_loadable_by_an_actor_agent():
    learner = Learner(build_agent("tiny", box(3), gym.spaces.Discrete(2)), learner_config(), 10)
    version, weights = learner.get_weights()
    assert version == 0 and all(t.device.type == "cpu" for t in weights.values())
    learner.update(learner.make_batch([ChainRollouts("terminate", 4, 2, learner.agent).rollout(5)]))
    new_version, new_weights = learner.get_weights()
    assert new_version == 1
    assert any(not torch.equal(weights[k], new_weights[k]) for k in weights)  # the old copy did not move
    actor_agent = build_agent("tiny", box(3), gym.spaces.Discrete(2), seed=5)
    actor_agent.load_state_dict(new_weights)
    for name, tensor in actor_agent.state_dict().items():
        torch.testing.assert_close(tensor, new_weights[name])


def chain_baseline_after_training(learner: Learner, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """300 updates on the 3-state chain (8 envs, one action), then a fresh 6-step trajectory's
    ``(baseline [T+1, 8], chain position [T+1, 8])`` under the trained agent."""
    rollouts = ChainRollouts(mode, 8, 1, learner.agent)
    for _ in range(300):
        learner.update(learner.make_batch([rollouts.rollout(5)]))
    traj = rollouts.rollout(6)
    batch = learner.make_batch([traj])
    with torch.no_grad():
        output, _ = learner.agent(batch.obs, batch.prev_action, batch.prev_reward, batch.is_first, batch.initial_state)
    return output.baseline.numpy(), traj.obs.argmax(-1)


@pytest.mark.slow
@pytest.mark.parametrize("kind", AGENT_KINDS)
@pytest.mark.parametrize("mode", ["terminate", "truncate"])
def test_baseline_learns_analytic_values(kind, mode):
    """One action, so rho = 1: the baseline must reach the discounted values of the chain.

    terminate: V(k) = sum_{j < 3 - k} 0.5^j = 1.75, 1.5, 1. truncate (reward + 0.5 * V_inf at the cut):
    V = 1 / (1 - 0.5) = 2 everywhere; ignoring the truncation would give 4, dropping the bootstrap 1.75 / 1.5 / 1.
    """
    agent = build_agent(kind, box(3), gym.spaces.Discrete(1))
    config = learner_config(optimizer="adam", learning_rate=3e-3, discount=0.5, entropy_cost=0.0)
    baseline, positions = chain_baseline_after_training(Learner(agent, config, total_updates=300), mode)
    expected = {"terminate": np.array([1.75, 1.5, 1.0]), "truncate": np.full(3, 2.0)}[mode]
    np.testing.assert_allclose(baseline, expected[positions], atol=0.1)


@pytest.mark.slow
def test_a_separate_critic_learns_the_analytic_values_through_its_own_torso_and_core():
    """``agent.critic: separate`` with PopArt: the baseline, now read from the critic's own LSTM core, reaches the
    chain's discounted values (1.75, 1.5, 1), and the value regression leaves the policy's torso and core as they were."""
    from agents import Agent

    torch.manual_seed(0)
    config = AgentConfig(mlp_sizes=(16,), core=CoreConfig(cell="lstm", gate="ur", hidden_size=16), critic="separate")
    agent = Agent(box(3), gym.spaces.Discrete(1), config)
    policy_before = {k: v.clone() for k, v in agent.state_dict().items() if k.startswith(("torso.", "core."))}
    learner = Learner(agent, learner_config(optimizer="adam", learning_rate=3e-3, discount=0.5), total_updates=300)
    baseline, positions = chain_baseline_after_training(learner, "terminate")
    np.testing.assert_allclose(baseline, np.array([1.75, 1.5, 1.0])[positions], atol=0.1)
    # One action: log pi = 0 and the entropy is 0, so only the value regression has a gradient, and it is the critic's.
    for key, before in policy_before.items():
        torch.testing.assert_close(learner.agent.state_dict()[key], before, msg=key)


@pytest.mark.slow
@pytest.mark.parametrize("kind", AGENT_KINDS)
def test_policy_moves_to_the_optimal_action_off_policy(kind):
    """Contextual bandit, uniform behaviour policy: pi(optimal | context) grows towards 1, and the
    baseline reaches the fixed point of clipped V-trace, V = sum_a min(mu_a, pi_a) r_a / sum_a min(mu_a, pi_a)."""
    agent = build_agent(kind, box(2), gym.spaces.Discrete(3))
    config = learner_config(optimizer="adam", learning_rate=5e-3, entropy_cost=0.0)
    learner = Learner(agent, config, total_updates=300)
    rollouts = ChainRollouts("bandit", 16, 3, agent)
    for _ in range(300):
        learner.update(learner.make_batch([rollouts.rollout(4)]))
    obs = torch.eye(2).reshape(1, 2, 2)
    state = learner.agent.initial_state(2)
    with torch.no_grad():
        output, _ = learner.agent(
            obs, torch.zeros(1, 2, dtype=torch.long), torch.zeros(1, 2), torch.ones(1, 2, dtype=torch.bool), state
        )
    pi = torch.softmax(output.policy_logits[0].double(), -1).numpy()
    for context, optimal in enumerate(ChainRollouts.OPTIMAL):
        assert pi[context, optimal] > 0.8, pi
        weights = np.minimum(pi[context], 1 / 3)
        expected_value = weights[optimal] / weights.sum()
        assert output.baseline[0, context].item() == pytest.approx(expected_value, abs=0.1)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("kind", AGENT_KINDS)
def test_cuda_update_and_weights(kind):
    agent = build_agent(kind, box(3), gym.spaces.Discrete(2))
    learner = Learner(agent, learner_config(device="auto"), total_updates=10)
    assert learner.device.type == "cuda"
    batch = learner.make_batch([ChainRollouts("terminate", 4, 2, agent).rollout(5)])
    assert batch.obs.device.type == "cuda"
    result, gates = learner.update(batch, collect_gates=True)
    assert np.isfinite(result[m.LOSS_TOTAL]) and learner.version == 1
    assert all(g.device.type == "cpu" for g in gates.values())
    assert all(t.device.type == "cpu" for t in learner.get_weights()[1].values())


def numpy_rmsprop(param, grads, lr, alpha, eps, momentum, convention):
    """RMSProp in float64 from the two conventions' equations (see learner/optim.py)."""
    param = np.array(param, dtype=np.float64)
    square_avg = np.ones_like(param) if convention == "tensorflow" else np.zeros_like(param)
    buffer = np.zeros_like(param)
    for grad in grads:
        square_avg = alpha * square_avg + (1 - alpha) * grad**2
        if convention == "tensorflow":
            buffer = momentum * buffer + lr * grad / np.sqrt(square_avg + eps)
            param = param - buffer
        else:
            buffer = momentum * buffer + grad / (np.sqrt(square_avg) + eps)
            param = param - lr * buffer
    return param


@pytest.mark.parametrize("convention", ["tensorflow", "pytorch"])
@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_rmsprop_conventions_match_numpy(convention, momentum):
    from learner.optim import make_optimizer

    rng = np.random.default_rng(0)
    start = rng.normal(size=(3, 4))
    grads = [rng.normal(scale=0.1, size=(3, 4)) for _ in range(4)]
    param = torch.nn.Parameter(torch.tensor(start))
    config = learner_config(rmsprop_eps_convention=convention, rmsprop_momentum=momentum, learning_rate=0.01)
    optimizer = make_optimizer([param], config)
    for grad in grads:
        param.grad = torch.tensor(grad)
        optimizer.step()
    expected = numpy_rmsprop(start, grads, 0.01, 0.99, 0.01, momentum, convention)
    np.testing.assert_allclose(param.detach().numpy(), expected, rtol=1e-12, atol=1e-14)
    # The conventions really differ with IMPALA's eps = 0.01 (so the switch is not cosmetic).
    other = "pytorch" if convention == "tensorflow" else "tensorflow"
    assert not np.allclose(expected, numpy_rmsprop(start, grads, 0.01, 0.99, 0.01, momentum, other))


def test_linear_schedule_reaches_zero_at_the_end():
    from learner.optim import learning_rate_at

    config = learner_config(learning_rate=1e-3)
    rates = [learning_rate_at(k, config, total_updates=4) for k in range(6)]
    np.testing.assert_allclose(rates, [1e-3, 7.5e-4, 5e-4, 2.5e-4, 0.0, 0.0])
    constant = learner_config(learning_rate=1e-3, lr_schedule="constant")
    assert learning_rate_at(3, constant, total_updates=4) == 1e-3


def test_reward_clip_clamps_the_trained_rewards():
    agent = build_agent("tiny", box(3), gym.spaces.Discrete(2))
    traj = ChainRollouts("terminate", 3, 2, agent, seed=2).rollout(5)
    rng = np.random.default_rng(0)
    big = dataclasses.replace(traj, reward=rng.normal(scale=5.0, size=traj.reward.shape).astype(np.float32))
    clipped = dataclasses.replace(traj, reward=np.clip(big.reward, -1.0, 1.0))
    with torch.no_grad():
        results = []
        for trajectory, config in ((big, learner_config(reward_clip=1.0)), (clipped, learner_config())):
            batch = make_batch([trajectory], "cpu")
            output, _ = agent(batch.obs, batch.prev_action, batch.prev_reward, batch.is_first, batch.initial_state)
            results.append(impala_loss(batch, output, agent.distribution, config).vtrace.vs)
    assert np.abs(big.reward).max() > 3.0
    torch.testing.assert_close(results[0], results[1])


def test_gradients_are_clipped_to_the_global_norm_before_the_step():
    agent = build_agent("tiny", box(3), gym.spaces.Discrete(2))
    learner = Learner(agent, learner_config(grad_norm_clip=1e-3), total_updates=10)
    seen = []
    original_step = learner.optimizer.step

    def spy_step(*args, **kwargs):
        grads = [p.grad for p in learner.agent.parameters() if p.grad is not None]
        seen.append(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])).item())
        return original_step(*args, **kwargs)

    learner.optimizer.step = spy_step
    result = learner.update(learner.make_batch([ChainRollouts("terminate", 4, 2, agent).rollout(5)]))
    assert result[m.OPTIM_GRAD_NORM] > 1e-2  # the metric is the norm before clipping
    assert seen == [pytest.approx(1e-3, rel=1e-4)]
