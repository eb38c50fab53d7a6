"""The Agent: one code path for actors (T = 1) and learner (T = unroll), every space, every cell.

Run: ``python -m pytest tests/test_agent.py -q`` (small sizes; a few seconds).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from scipy import stats

import memory_cells
from agents import Agent, AgentOutput, make_distribution
from agents.torsos import DeepConvTorso, MLPTorso, ResidualBlock, ShallowConvTorso
from configs.schema import AgentConfig, CoreConfig

T, B = 6, 3
VECTOR = gym.spaces.Box(-2.0, 2.0, (3,), np.float32)
DISCRETE = gym.spaces.Discrete(3)
MULTI = gym.spaces.MultiDiscrete([2, 3])
CELL_GATES = [(c, g) for c in memory_cells.CELLS for g in memory_cells.GATES if c != "none" or g == "standard"]


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: intra-op threads only contend on a loaded machine, so run each test on one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_agent(
    obs_space: gym.Space = VECTOR,
    action_space: gym.Space = DISCRETE,
    cell: str = "lstm",
    gate: str = "standard",
    hidden_size: int = 6,
    num_layers: int = 1,
    torso: str = "auto",
    options: dict[str, Any] | None = None,
    seed: int = 0,
    head_sizes: tuple[int, ...] = (),
    prev_action_reward: bool = True,
    critic: str = "shared",
) -> Agent:
    torch.manual_seed(seed)
    core = CoreConfig(cell=cell, gate=gate, hidden_size=hidden_size, num_layers=num_layers, options=options or {})
    config = AgentConfig(
        torso=torso,
        mlp_sizes=(8,),
        core=core,
        head_sizes=head_sizes,
        prev_action_reward=prev_action_reward,
        critic=critic,
    )
    return Agent(obs_space, action_space, config)


def batch_sample(space: gym.Space, time: int, batch: int) -> Any:
    """``[time, batch, *shape]`` numpy samples of ``space`` (a dict / tuple of them for Dict / Tuple)."""
    if isinstance(space, gym.spaces.Dict):
        return {key: batch_sample(sub, time, batch) for key, sub in space.spaces.items()}
    if isinstance(space, gym.spaces.Tuple):
        return tuple(batch_sample(sub, time, batch) for sub in space.spaces)
    return np.array([[space.sample() for _ in range(batch)] for _ in range(time)])


def index(obs: Any, t: slice) -> Any:
    if isinstance(obs, dict):
        return {key: index(value, t) for key, value in obs.items()}
    if isinstance(obs, tuple):
        return tuple(index(value, t) for value in obs)
    return obs[t]


def inputs(obs_space: gym.Space, action_space: gym.Space, seed: int = 0) -> dict[str, Any]:
    """Random agent inputs ``[T, B, ...]`` with episode starts inside the unroll."""
    obs_space.seed(seed)
    action_space.seed(seed + 1)
    rng = np.random.default_rng(seed)
    is_first = np.zeros((T, B), dtype=bool)
    is_first[0, 0] = is_first[3, 1] = True
    is_first[4, :] = True
    return {
        "obs": batch_sample(obs_space, T, B),
        "prev_action": torch.as_tensor(batch_sample(action_space, T, B)),
        "prev_reward": torch.as_tensor(rng.normal(size=(T, B)), dtype=torch.float32),
        "is_first": torch.as_tensor(is_first),
    }


def run_steps(agent: Agent, data: dict[str, Any], state: tuple) -> tuple[AgentOutput, tuple]:
    """The actor's way: T calls with T = 1, carrying the state; outputs concatenated over time."""
    outputs = []
    for t in range(T):
        step = {key: index(value, slice(t, t + 1)) for key, value in data.items()}
        output, state = agent(**step, state=state, collect_gates=True)
        outputs.append(output)
    gates = {key: torch.cat([o.gates[key] for o in outputs]) for key in outputs[0].gates}
    logits = torch.cat([o.policy_logits for o in outputs])
    return AgentOutput(logits, torch.cat([o.baseline for o in outputs]), gates), state


def assert_same(a: AgentOutput, b: AgentOutput, state_a: tuple, state_b: tuple) -> None:
    torch.testing.assert_close(a.policy_logits, b.policy_logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(a.baseline, b.baseline, atol=1e-5, rtol=1e-5)
    assert a.gates.keys() == b.gates.keys()
    for key in a.gates:
        torch.testing.assert_close(a.gates[key], b.gates[key], atol=1e-5, rtol=1e-5)
    assert len(state_a) == len(state_b)
    for x, y in zip(state_a, state_b, strict=True):
        torch.testing.assert_close(x, y, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("cell", "gate"), CELL_GATES)
def test_unroll_equals_single_steps_for_every_cell_and_gate(cell: str, gate: str) -> None:
    agent = make_agent(cell=cell, gate=gate)
    data = inputs(VECTOR, DISCRETE)
    state = tuple(torch.randn_like(s) for s in agent.initial_state(B))  # a mid-episode state, as actors carry
    with torch.no_grad():
        unrolled, final = agent(**data, state=state, collect_gates=True)
        stepped, stepped_final = run_steps(agent, data, state)
    assert unrolled.policy_logits.shape == (T, B, 3) and unrolled.baseline.shape == (T, B)
    assert_same(unrolled, stepped, final, stepped_final)


@pytest.mark.parametrize(("cell", "gate"), [("lstm", "ur"), ("gru", "om"), ("none", "standard")])
def test_two_layer_unroll_equals_single_steps(cell: str, gate: str) -> None:
    agent = make_agent(MULTI, MULTI, cell=cell, gate=gate, num_layers=2, options={})
    data = inputs(MULTI, MULTI)
    state = tuple(torch.randn_like(s) for s in agent.initial_state(B))
    with torch.no_grad():
        unrolled, final = agent(**data, state=state, collect_gates=True)
        stepped, stepped_final = run_steps(agent, data, state)
    assert_same(unrolled, stepped, final, stepped_final)


def test_an_episode_start_inside_the_unroll_equals_a_fresh_start() -> None:
    agent = make_agent(cell="lstm", gate="ur", num_layers=2)
    data = inputs(VECTOR, DISCRETE)
    state = tuple(torch.randn_like(s) for s in agent.initial_state(B))
    with torch.no_grad():
        whole, _ = agent(**data, state=state)
        # Steps 4.. start a new episode in every environment: replay them alone from the initial state.
        tail = {key: index(value, slice(4, T)) for key, value in data.items()}
        fresh, _ = agent(**tail, state=agent.initial_state(B))
    torch.testing.assert_close(whole.policy_logits[4:], fresh.policy_logits, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(whole.baseline[4:], fresh.baseline, atol=1e-6, rtol=1e-6)


def test_initial_state_is_flat_batch_first_and_concatenates_layers() -> None:
    lstm = make_agent(cell="lstm", gate="ur", num_layers=3).initial_state(5)
    assert len(lstm) == 6 and all(s.shape == (5, 6) and not s.any() for s in lstm)
    assert len(make_agent(cell="gru", num_layers=2).initial_state(5)) == 2
    assert make_agent(cell="none", num_layers=2).initial_state(5) == ()


IMAGE_SMALL = gym.spaces.Box(0, 255, (8, 8, 3), np.uint8)
IMAGE_SHALLOW = gym.spaces.Box(0, 255, (20, 20, 3), np.uint8)
SPACES = {
    "vector": (VECTOR, "auto", MLPTorso),
    "matrix": (gym.spaces.Box(-1.0, 1.0, (2, 3), np.float64), "auto", MLPTorso),
    "image_shallow": (IMAGE_SHALLOW, "auto", ShallowConvTorso),
    "image_deep": (IMAGE_SMALL, "deep_conv", DeepConvTorso),
    "image_mlp": (IMAGE_SMALL, "mlp", MLPTorso),
    "discrete": (gym.spaces.Discrete(4, start=2), "auto", MLPTorso),
    "multidiscrete": (gym.spaces.MultiDiscrete([2, 5, 3]), "auto", MLPTorso),
    "multibinary": (gym.spaces.MultiBinary(4), "auto", MLPTorso),
    "dict": (
        gym.spaces.Dict(
            {"image": IMAGE_SMALL, "direction": gym.spaces.Discrete(4), "flags": gym.spaces.MultiBinary(2)}
        ),
        "auto",
        MLPTorso,
    ),
    "tuple": (gym.spaces.Tuple((VECTOR, gym.spaces.Discrete(2), gym.spaces.MultiDiscrete([3, 2]))), "auto", MLPTorso),
}


@pytest.mark.parametrize("action_space", [DISCRETE, MULTI], ids=["discrete", "multidiscrete"])
@pytest.mark.parametrize("name", list(SPACES))
def test_builds_and_runs_for_every_observation_space(name: str, action_space: gym.Space) -> None:
    obs_space, torso, torso_type = SPACES[name]
    agent = make_agent(obs_space, action_space, cell="lstm", gate="ur", torso=torso)
    assert isinstance(agent.torso, torso_type)
    data = inputs(obs_space, action_space)
    output, state = agent(**data, state=agent.initial_state(B))
    assert output.policy_logits.shape == (T, B, agent.num_logits)
    assert output.baseline.shape == (T, B)
    assert torch.isfinite(output.policy_logits).all() and torch.isfinite(output.baseline).all()
    assert output.gates == {}
    assert [s.shape for s in state] == [(B, 6), (B, 6)]
    actions = agent.distribution.sample(output.policy_logits)
    assert actions.shape == (T, B, *agent.distribution.action_shape)


def test_numpy_inputs_are_accepted() -> None:
    agent = make_agent(IMAGE_SMALL, MULTI, torso="deep_conv")
    data = inputs(IMAGE_SMALL, MULTI)
    with torch.no_grad():
        as_tensors, _ = agent(**data, state=agent.initial_state(B))
        as_numpy, _ = agent(**{k: np.asarray(v) for k, v in data.items()}, state=agent.initial_state(B))
    torch.testing.assert_close(as_tensors.policy_logits, as_numpy.policy_logits)


def ref_encode(space: gym.Space, obs: Any) -> np.ndarray:
    """One observation -> float64 features, written out per space from the encoding rules."""
    if isinstance(space, gym.spaces.Dict):
        return np.concatenate([ref_encode(space[key], obs[key]) for key in space.spaces])
    if isinstance(space, gym.spaces.Tuple):
        return np.concatenate([ref_encode(sub, part) for sub, part in zip(space.spaces, obs, strict=True)])
    if isinstance(space, gym.spaces.Discrete):
        return np.eye(space.n)[int(obs) - space.start]
    if isinstance(space, gym.spaces.MultiDiscrete):
        return np.concatenate([np.eye(n)[int(v)] for n, v in zip(space.nvec.ravel(), np.ravel(obs), strict=True)])
    scale = 255.0 if space.dtype == np.uint8 else 1.0
    return np.ravel(obs).astype(np.float64) / scale


@pytest.mark.parametrize("name", ["dict", "tuple", "discrete", "multidiscrete", "multibinary", "image_mlp"])
def test_flat_encoding_matches_reference(name: str) -> None:
    from agents.spaces import encode, flat_size

    space = SPACES[name][0]
    space.seed(3)
    samples = [space.sample() for _ in range(4)]
    if isinstance(space, gym.spaces.Dict):
        batched = {key: np.stack([s[key] for s in samples]) for key in space.spaces}
    elif isinstance(space, gym.spaces.Tuple):
        batched = tuple(np.stack([s[i] for s in samples]) for i in range(len(space.spaces)))
    else:
        batched = np.stack(samples)
    expected = np.stack([ref_encode(space, s) for s in samples])
    assert expected.shape == (4, flat_size(space))
    np.testing.assert_allclose(encode(space, batched).numpy(), expected, rtol=1e-6, atol=1e-7)


def test_conv_torsos_have_impala_shapes_on_atari_frames() -> None:
    # Shallow: 84 -> (84 - 8) / 4 + 1 = 20 -> (20 - 4) / 2 + 1 = 9, so 32 * 9 * 9 features into fc 256.
    shallow = ShallowConvTorso(gym.spaces.Box(0, 255, (84, 84, 4), np.uint8))
    assert shallow.fc[0].in_features == 32 * 9 * 9 and shallow.out_features == 256
    # Deep: three 3x3/2 max-pools with padding 1: 84 -> 42 -> 21 -> 11, 32 channels.
    deep = DeepConvTorso(gym.spaces.Box(0, 255, (84, 84, 3), np.uint8))
    assert deep.fc[0].in_features == 32 * 11 * 11 and deep.out_features == 256
    assert [section[0].out_channels for section in deep.convs[:3]] == [16, 32, 32]
    assert sum(isinstance(m, ResidualBlock) for m in deep.modules()) == 6


@pytest.mark.parametrize("torso_type", [ShallowConvTorso, DeepConvTorso])
def test_conv_torsos_scale_uint8_pixels_to_unit_range(torso_type: type) -> None:
    shape = (20, 20, 3)
    pixel_torso = torso_type(gym.spaces.Box(0, 255, shape, np.uint8))
    float_torso = torso_type(gym.spaces.Box(0.0, 1.0, shape, np.float32))
    float_torso.load_state_dict(pixel_torso.state_dict())
    pixels = torch.randint(0, 256, (2, *shape), dtype=torch.uint8)
    torch.testing.assert_close(pixel_torso(pixels), float_torso(pixels.float() / 255.0))


@pytest.mark.parametrize(
    ("obs_space", "torso", "message"),
    [
        (gym.spaces.Text(5), "auto", "Text"),
        (gym.spaces.Dict({"pos": VECTOR, "mission": gym.spaces.Text(5)}), "auto", r"observation\['mission'\].*Text"),
        (gym.spaces.Tuple((VECTOR, gym.spaces.Sequence(VECTOR))), "auto", r"observation\[1\].*Sequence"),
        (gym.spaces.Graph(VECTOR, None), "auto", "Graph"),
        (VECTOR, "shallow_conv", "shallow_conv torso needs an"),
        (gym.spaces.Box(0, 255, (8, 8, 3), np.uint8), "shallow_conv", "too small"),
        (VECTOR, "resnet", "Unknown torso"),
    ],
)
def test_unsupported_observations_are_refused_at_construction(obs_space: gym.Space, torso: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_agent(obs_space, DISCRETE, torso=torso)


def test_layer_norm_makes_the_torso_indifferent_to_the_scale_of_each_layer() -> None:
    """What ``agent.layer_norm`` promises: moving a layer's weights and bias by any common factor (a large
    step along them) leaves the features unchanged; without it they grow with it."""
    obs = torch.as_tensor(np.random.default_rng(0).uniform(-2, 2, (5, 3)), dtype=torch.float32)
    for layer_norm in (True, False):
        torso = MLPTorso(VECTOR, (16, 8), layer_norm=layer_norm)
        with torch.no_grad():
            before = torso(obs)
            for linear in (m for m in torso.layers if isinstance(m, torch.nn.Linear)):
                linear.weight.mul_(7.0)
                linear.bias.mul_(7.0)
            after = torso(obs)
        norms = [m for m in torso.layers if isinstance(m, torch.nn.LayerNorm)]
        assert len(norms) == (2 if layer_norm else 0)
        if layer_norm:
            torch.testing.assert_close(after, before, atol=1e-4, rtol=1e-4)
        else:
            assert after.abs().sum() > 7.0 * before.abs().sum()


def test_layer_norm_normalises_each_hidden_layer_before_its_relu() -> None:
    """Against a float64 reference: relu((x W1^T + b1 - mean) / sqrt(var + eps)) per layer (gain 1, shift 0 at init)."""
    torso = MLPTorso(VECTOR, (6,), layer_norm=True)
    obs = np.random.default_rng(1).uniform(-2, 2, (4, 3))
    weight, bias = (p.detach().double().numpy() for p in torso.layers[0].parameters())
    pre = obs @ weight.T + bias
    normed = (pre - pre.mean(-1, keepdims=True)) / np.sqrt(pre.var(-1, keepdims=True) + 1e-5)
    got = torso(torch.as_tensor(obs, dtype=torch.float32)).double().detach().numpy()
    np.testing.assert_allclose(got, np.maximum(normed, 0.0), atol=1e-5)


def test_layer_norm_with_a_conv_torso_is_refused_at_construction() -> None:
    config = AgentConfig(torso="shallow_conv", layer_norm=True)
    with pytest.raises(ValueError, match="agent.layer_norm applies to the MLP torso only, not to shallow_conv"):
        Agent(IMAGE_SHALLOW, DISCRETE, config)


def test_continuous_actions_are_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="Unsupported action space"):
        make_agent(VECTOR, gym.spaces.Box(-1.0, 1.0, (2,), np.float32))


def test_gates_are_reported_per_layer_only_when_asked() -> None:
    agent = make_agent(cell="lstm", gate="ur", num_layers=2)
    data = inputs(VECTOR, DISCRETE)
    with torch.no_grad():
        output, _ = agent(**data, state=agent.initial_state(B), collect_gates=True)
        plain, _ = agent(**data, state=agent.initial_state(B))
    assert set(output.gates) == {"f", "r", "g", "layer1/f", "layer1/r", "layer1/g"}
    for value in output.gates.values():
        assert value.shape == (T, B, 6) and value.min() >= 0.0 and value.max() <= 1.0
    assert not torch.equal(output.gates["f"], output.gates["layer1/f"])
    assert plain.gates == {}
    torch.testing.assert_close(plain.policy_logits, output.policy_logits)


def test_gradients_reach_every_parameter() -> None:
    obs_space = gym.spaces.Dict({"image": IMAGE_SMALL, "goal": gym.spaces.Discrete(3)})
    agent = make_agent(obs_space, MULTI, cell="gru", gate="ur", num_layers=2)
    deep = make_agent(IMAGE_SMALL, DISCRETE, cell="lstm", gate="ur", torso="deep_conv")
    for model, space, actions in ((agent, obs_space, MULTI), (deep, IMAGE_SMALL, DISCRETE)):
        output, _ = model(**inputs(space, actions), state=model.initial_state(B))
        (output.policy_logits.square().sum() + output.baseline.square().sum()).backward()
        for name, parameter in model.named_parameters():
            assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


@pytest.mark.parametrize(
    ("cell", "gate", "num_layers"), [("lstm", "ur", 2), ("gru", "standard", 1), ("none", "standard", 1)]
)
def test_a_separate_critic_unrolls_as_single_steps_and_resets_at_episode_starts(
    cell: str, gate: str, num_layers: int
) -> None:
    agent = make_agent(cell=cell, gate=gate, num_layers=num_layers, critic="separate")
    shared = make_agent(cell=cell, gate=gate, num_layers=num_layers)
    assert len(agent.initial_state(B)) == 2 * len(shared.initial_state(B))  # the policy core's, then the critic's
    data = inputs(VECTOR, DISCRETE)
    state = tuple(torch.randn_like(s) for s in agent.initial_state(B))
    with torch.no_grad():
        unrolled, final = agent(**data, state=state, collect_gates=True)
        stepped, stepped_final = run_steps(agent, data, state)
        tail = {key: index(value, slice(4, T)) for key, value in data.items()}
        fresh, _ = agent(**tail, state=agent.initial_state(B))
    assert_same(unrolled, stepped, final, stepped_final)
    torch.testing.assert_close(unrolled.baseline[4:], fresh.baseline, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(unrolled.policy_logits[4:], fresh.policy_logits, atol=1e-6, rtol=1e-6)
    assert set(unrolled.gates) == set(shared(**data, state=shared.initial_state(B), collect_gates=True)[0].gates)
    if cell != "none":  # the other's state, one core's tensors short or long, is refused rather than cut
        with pytest.raises(ValueError, match="agent state has"):
            agent(**data, state=shared.initial_state(B))
        with pytest.raises(ValueError, match="agent state has"):
            shared(**data, state=agent.initial_state(B))


def test_a_separate_critic_keeps_the_value_regression_off_the_policy_and_the_policy_off_the_critic() -> None:
    agent = make_agent(cell="lstm", gate="ur", critic="separate")
    output, _ = agent(**inputs(VECTOR, DISCRETE), state=agent.initial_state(B))
    critic = [name for name, _ in agent.named_parameters() if name.startswith(("critic.", "heads.baseline."))]
    assert any(n.startswith("critic.core.") for n in critic) and any(n.startswith("critic.torso.") for n in critic)
    parameters = dict(agent.named_parameters())
    value_grads = torch.autograd.grad(output.baseline.square().sum(), list(parameters.values()), allow_unused=True)
    policy_grads = torch.autograd.grad(
        output.policy_logits.square().sum(), list(parameters.values()), allow_unused=True
    )
    for name, value_grad, policy_grad in zip(parameters, value_grads, policy_grads, strict=True):
        if name in critic:
            assert policy_grad is None and value_grad is not None and value_grad.abs().sum() > 0, name
        else:
            assert value_grad is None and policy_grad is not None and policy_grad.abs().sum() > 0, name
    # The shared agent's value regression does reach the torso and the core: what "separate" removes.
    shared = make_agent(cell="lstm", gate="ur")
    output, _ = shared(**inputs(VECTOR, DISCRETE), state=shared.initial_state(B))
    output.baseline.square().sum().backward()
    assert shared.torso.layers[0].weight.grad.abs().sum() > 0


def test_previous_action_and_clipped_previous_reward_reach_the_core() -> None:
    agent = make_agent(VECTOR, MULTI, cell="none")
    data = inputs(VECTOR, MULTI)
    state = agent.initial_state(B)
    with torch.no_grad():
        base = agent(**data, state=state)[0].policy_logits
        other_action = agent(**{**data, "prev_action": (data["prev_action"] + 1) % 2}, state=state)[0].policy_logits
        big = agent(**{**data, "prev_reward": torch.full((T, B), 5.0)}, state=state)[0].policy_logits
        one = agent(**{**data, "prev_reward": torch.ones(T, B)}, state=state)[0].policy_logits
        half = agent(**{**data, "prev_reward": torch.full((T, B), 0.5)}, state=state)[0].policy_logits
    assert not torch.allclose(base, other_action)
    torch.testing.assert_close(big, one)  # the reward input is clipped to [-1, 1], as in IMPALA
    assert not torch.allclose(one, half)


@pytest.mark.parametrize("cell", ["none", "lstm"])
def test_without_previous_action_and_reward_the_core_sees_the_observation_alone(cell: str) -> None:
    agent = make_agent(VECTOR, MULTI, cell=cell, prev_action_reward=False)
    with_feedback = make_agent(VECTOR, MULTI, cell=cell)
    assert sum(p.numel() for p in agent.parameters()) < sum(p.numel() for p in with_feedback.parameters())
    data = inputs(VECTOR, MULTI)
    state = agent.initial_state(B)
    with torch.no_grad():
        base = agent(**data, state=state)[0]
        changed = {"prev_action": (data["prev_action"] + 1) % 2, "prev_reward": torch.full((T, B), 0.5)}
        other = agent(**{**data, **changed}, state=state)[0]
    torch.testing.assert_close(other.policy_logits, base.policy_logits, rtol=0, atol=0)
    torch.testing.assert_close(other.baseline, base.baseline, rtol=0, atol=0)


def assert_orthogonal(weight: torch.Tensor, gain: float) -> None:
    w = weight.detach().reshape(weight.shape[0], -1).double()
    gram = w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w
    torch.testing.assert_close(gram, gain**2 * torch.eye(gram.shape[0], dtype=torch.float64), atol=1e-5, rtol=1e-4)


def test_torso_and_heads_are_orthogonal_with_zero_biases() -> None:
    agent = make_agent(IMAGE_SHALLOW, MULTI, torso="shallow_conv")
    assert_orthogonal(agent.heads.policy.weight, 0.01)
    assert_orthogonal(agent.heads.baseline.linear.weight, 1.0)
    for layer in (*agent.torso.convs, *agent.torso.fc):
        if isinstance(layer, torch.nn.Conv2d | torch.nn.Linear):
            assert_orthogonal(layer.weight, np.sqrt(2.0))
            assert not layer.bias.any()
    assert not agent.heads.policy.bias.any() and not agent.heads.baseline.linear.bias.any()


def test_head_sizes_put_hidden_relu_layers_before_each_head() -> None:
    """``head_sizes`` = (5, 4): h -> Linear 5 -> ReLU -> Linear 4 -> ReLU -> last linear, per head (float64 reference)."""
    agent = make_agent(VECTOR, DISCRETE, head_sizes=(5, 4))
    plain = make_agent(VECTOR, DISCRETE)
    assert set(dict(agent.named_parameters())) - set(dict(plain.named_parameters())) == {
        f"heads.{head}.{index}.{kind}" for head in ("policy_hidden", "baseline.hidden")
        for index in (0, 2) for kind in ("weight", "bias")
    }  # fmt: skip
    assert agent.heads.policy.in_features == agent.heads.baseline.linear.in_features == 4
    for layer in (*agent.heads.policy_hidden, *agent.heads.baseline.hidden):
        if isinstance(layer, torch.nn.Linear):
            assert_orthogonal(layer.weight, np.sqrt(2.0))
    with torch.no_grad():
        torch.nn.init.normal_(agent.heads.baseline.linear.bias)  # make every term of the reference count
        agent.value_head.mean.fill_(1.5)
        agent.value_head.std.fill_(3.0)
    h = torch.randn(7, 6)
    weights = {name: value.detach().double().numpy() for name, value in agent.heads.named_parameters()}

    def mlp(x: np.ndarray, prefix: str) -> np.ndarray:
        for index in (0, 2):
            x = np.maximum(x @ weights[f"{prefix}.{index}.weight"].T + weights[f"{prefix}.{index}.bias"], 0.0)
        return x

    x = h.double().numpy()
    logits = mlp(x, "policy_hidden") @ weights["policy.weight"].T + weights["policy.bias"]
    value = (
        3.0 * (mlp(x, "baseline.hidden") @ weights["baseline.linear.weight"].T + weights["baseline.linear.bias"])[:, 0]
    )
    output = agent.heads(h)
    np.testing.assert_allclose(output.policy_logits.detach().numpy(), logits, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(output.baseline.detach().numpy(), value + 1.5, rtol=1e-5, atol=1e-6)
    # Gradients reach the hidden layers through the whole agent.
    out, _ = agent(**inputs(VECTOR, DISCRETE), state=agent.initial_state(B))
    (out.policy_logits.square().sum() + out.baseline.square().sum()).backward()
    for name, parameter in agent.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def forget_gates_at_rest(agent: Agent) -> dict[str, np.ndarray]:
    """Layer 0's gates for a zero input and zero state: sigmoids of the initial gate biases alone."""
    cell = agent.core.layers[0]
    with torch.no_grad():
        _, _, gates = cell.step_with_gates(torch.zeros(1, cell.input_size), cell.initial_state(1))
    return {key: value[0].double().numpy() for key, value in gates.items()}


@pytest.mark.parametrize(("cell", "gate"), [("lstm", "u"), ("lstm", "ur"), ("gru", "ur")])
def test_ugi_biases_survive_agent_construction(cell: str, gate: str) -> None:
    d = 128
    gates = forget_gates_at_rest(make_agent(cell=cell, gate=gate, hidden_size=d, num_layers=2))
    f = gates["f"]
    # UGI: sigma(b_f) ~ U[1/d, 1 - 1/d] (Gu et al. 2020, sec. 3); zeroed biases would give f = 1/2 everywhere.
    assert f.min() >= 1 / d - 1e-6 and f.max() <= 1 - 1 / d + 1e-6
    assert stats.kstest(f, "uniform", args=(1 / d, 1 - 2 / d)).pvalue > 1e-3
    if "r" in gates:  # UR: r = sigma(-b_f) = 1 - f at rest (PAPER.md property 9)
        np.testing.assert_allclose(gates["r"], 1 - f, atol=1e-6)


def test_chrono_and_forget_biases_survive_agent_construction() -> None:
    d, t_max = 128, 50.0
    f = forget_gates_at_rest(make_agent(cell="lstm", gate="chrono", hidden_size=d, options={"t_max": t_max}))["f"]
    timescales = 1 / (1 - f)  # chrono: uniform on [2, T_max] (Tallec & Ollivier 2018)
    assert timescales.min() >= 2 - 1e-3 and timescales.max() <= t_max + 1e-2
    assert stats.kstest(timescales, "uniform", args=(2, t_max - 2)).pvalue > 1e-3
    f = forget_gates_at_rest(make_agent(cell="lstm", gate="standard", hidden_size=d))["f"]
    np.testing.assert_allclose(f, 1 / (1 + np.exp(-1.0)), atol=1e-6)  # the classic forget bias of 1


def test_distribution_matches_action_space() -> None:
    agent = make_agent(VECTOR, MULTI)
    assert agent.num_logits == 5 and agent.distribution.action_shape == (2,)
    assert repr(agent.distribution) == repr(make_distribution(MULTI))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_agent_takes_host_inputs_and_matches_cpu() -> None:
    obs_space = gym.spaces.Dict({"image": IMAGE_SMALL, "goal": gym.spaces.Discrete(3)})
    agent = make_agent(obs_space, MULTI, cell="lstm", gate="ur", num_layers=2)
    data = inputs(obs_space, MULTI)
    with torch.no_grad():
        cpu, _ = agent(**data, state=agent.initial_state(B))
        agent.cuda()
        gpu, state = agent(**data, state=agent.initial_state(B, device="cuda"))
    assert all(s.is_cuda for s in state)
    torch.testing.assert_close(gpu.policy_logits.cpu(), cpu.policy_logits, atol=1e-4, rtol=1e-4)
