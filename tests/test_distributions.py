"""Action distributions against plain float64 numpy loops written from the definitions."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from agents.distributions import (
    ActionDistribution,
    Categorical,
    MultiCategorical,
    greedy_action,
    make_distribution,
    sample_action,
)


def ref_log_softmax(z: np.ndarray) -> np.ndarray:
    """log p_i = z_i - log sum_j exp(z_j), one vector at a time, stabilised by the max."""
    m = max(z)
    log_norm = m + np.log(sum(np.exp(v - m) for v in z))
    return np.array([v - log_norm for v in z], dtype=np.float64)


def ref_log_prob(logits: np.ndarray, actions: np.ndarray, nvec: list[int]) -> np.ndarray:
    """sum_k log softmax(z^k)[a_k] with a double loop over T, B and the K heads; actions [T, B, K]."""
    time, batch = logits.shape[:2]
    out = np.zeros((time, batch))
    for t in range(time):
        for b in range(batch):
            start = 0
            for k, n in enumerate(nvec):
                out[t, b] += ref_log_softmax(logits[t, b, start : start + n])[actions[t, b, k]]
                start += n
    return out


def ref_entropy(logits: np.ndarray, nvec: list[int]) -> np.ndarray:
    """sum_k -sum_a p_k(a) log p_k(a), looping over T, B, K and the actions."""
    time, batch = logits.shape[:2]
    out = np.zeros((time, batch))
    for t in range(time):
        for b in range(batch):
            start = 0
            for n in nvec:
                log_p = ref_log_softmax(logits[t, b, start : start + n])
                out[t, b] -= sum(np.exp(lp) * lp for lp in log_p)
                start += n
    return out


def random_case(nvec: list[int], scale: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=scale, size=(3, 5, sum(nvec)))
    actions = np.stack([rng.integers(0, n, size=(3, 5)) for n in nvec], axis=-1)
    return logits, actions


@pytest.mark.parametrize("scale", [0.5, 3.0, 40.0])
def test_categorical_log_prob_and_entropy_match_numpy(scale: float) -> None:
    logits, actions = random_case([6], scale, seed=1)
    dist = Categorical(6)
    lp = dist.log_prob(torch.tensor(logits), torch.tensor(actions[..., 0]))
    np.testing.assert_allclose(lp.numpy(), ref_log_prob(logits, actions, [6]), rtol=1e-10, atol=1e-10)
    ent = dist.entropy(torch.tensor(logits))
    np.testing.assert_allclose(ent.numpy(), ref_entropy(logits, [6]), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("scale", [0.5, 3.0])
def test_multidiscrete_log_probs_and_entropies_are_summed_over_heads(scale: float) -> None:
    nvec = [3, 1, 4, 2]
    logits, actions = random_case(nvec, scale, seed=2)
    dist = MultiCategorical(tuple(nvec))
    lp = dist.log_prob(torch.tensor(logits), torch.tensor(actions))
    np.testing.assert_allclose(lp.numpy(), ref_log_prob(logits, actions, nvec), rtol=1e-10, atol=1e-10)
    ent = dist.entropy(torch.tensor(logits))
    np.testing.assert_allclose(ent.numpy(), ref_entropy(logits, nvec), rtol=1e-10, atol=1e-10)


def test_float32_log_prob_is_close_to_float64_reference() -> None:
    logits, actions = random_case([3, 5], 2.0, seed=3)
    lp = MultiCategorical((3, 5)).log_prob(torch.tensor(logits, dtype=torch.float32), torch.tensor(actions))
    np.testing.assert_allclose(lp.numpy(), ref_log_prob(logits, actions, [3, 5]), rtol=1e-5, atol=1e-5)


def test_log_prob_gradient_is_one_hot_minus_probabilities() -> None:
    # d log p(a) / d z_j = [j == a] - p_j, per head.
    nvec = [3, 4]
    logits, actions = random_case(nvec, 1.0, seed=4)
    z = torch.tensor(logits, requires_grad=True)
    MultiCategorical(tuple(nvec)).log_prob(z, torch.tensor(actions)).sum().backward()
    expected = np.zeros_like(logits)
    for t in range(3):
        for b in range(5):
            start = 0
            for k, n in enumerate(nvec):
                p = np.exp(ref_log_softmax(logits[t, b, start : start + n]))
                expected[t, b, start : start + n] = -p
                expected[t, b, start + actions[t, b, k]] += 1.0
                start += n
    np.testing.assert_allclose(z.grad.numpy(), expected, rtol=1e-10, atol=1e-10)


def test_uniform_logits_give_maximal_entropy() -> None:
    dist = MultiCategorical((2, 5))
    ent = dist.entropy(torch.zeros(2, 3, 7, dtype=torch.float64))
    np.testing.assert_allclose(ent.numpy(), np.log(2) + np.log(5))


@pytest.mark.parametrize("nvec", [[4], [3, 2]])
def test_sample_frequencies_follow_softmax(nvec: list[int]) -> None:
    dist: ActionDistribution = Categorical(nvec[0]) if len(nvec) == 1 else MultiCategorical(tuple(nvec))
    row = np.array([0.3, -1.0, 1.2, 0.0, 0.5, -0.4])[: sum(nvec)]
    draws = 20_000
    logits = torch.tensor(np.broadcast_to(row, (draws, 1, sum(nvec))).copy(), dtype=torch.float32)
    actions = sample_action(dist, logits, generator=torch.Generator().manual_seed(0)).reshape(draws, -1).numpy()
    start = 0
    for k, n in enumerate(nvec):
        expected = np.exp(ref_log_softmax(row[start : start + n]))
        counts = np.bincount(actions[:, k], minlength=n) / draws
        # Binomial standard error is below 0.0036 for 20k draws; 0.015 is over 4 of them.
        np.testing.assert_allclose(counts, expected, atol=0.015)
        start += n


def test_sample_shapes_dtypes_and_generator_reproducibility() -> None:
    dist = MultiCategorical((3, 2))
    logits = torch.randn(4, 6, 5)
    first = dist.sample(logits, generator=torch.Generator().manual_seed(7))
    second = dist.sample(logits, generator=torch.Generator().manual_seed(7))
    assert first.shape == (4, 6, 2) and first.dtype == torch.int64
    assert torch.equal(first, second)
    assert int(first[..., 0].max()) < 3 and int(first[..., 1].max()) < 2
    single = Categorical(5).sample(torch.randn(4, 6, 5))
    assert single.shape == (4, 6) and single.dtype == torch.int64


def test_greedy_is_argmax_per_head() -> None:
    logits = torch.tensor([[[0.1, 2.0, -1.0, 5.0, 4.0]]])
    assert greedy_action(Categorical(5), logits).tolist() == [[3]]
    assert greedy_action(MultiCategorical((3, 2)), logits).tolist() == [[[1, 0]]]


def test_one_hot_encodes_each_component_in_order() -> None:
    dist = MultiCategorical((3, 2))
    encoded = dist.one_hot(torch.tensor([[2, 1], [0, 0]]))
    assert encoded.tolist() == [[0, 0, 1, 0, 1], [1, 0, 0, 1, 0]]
    assert Categorical(3).one_hot(torch.tensor([1])).tolist() == [[0, 1, 0]]


def test_make_distribution_from_spaces() -> None:
    assert isinstance(make_distribution(gym.spaces.Discrete(4)), Categorical)
    dist = make_distribution(gym.spaces.MultiDiscrete([3, 5]))
    assert isinstance(dist, MultiCategorical) and dist.num_logits == 8 and dist.action_shape == (2,)


@pytest.mark.parametrize(
    "space",
    [
        gym.spaces.Box(-1.0, 1.0, (2,)),
        gym.spaces.MultiBinary(3),
        gym.spaces.Discrete(3, start=1),
        gym.spaces.MultiDiscrete([[2, 2], [2, 2]]),
    ],
)
def test_unsupported_action_spaces_are_refused(space: gym.Space) -> None:
    with pytest.raises(ValueError, match="action"):
        make_distribution(space)
