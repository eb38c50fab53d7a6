"""The project's memory tasks: gymnasium's checker, seeding, and proof that they need memory.

Each task is played by scripted policies that read only the observation (decoded
here from the layout documented in docs/envs.md, not with the environments' code):
one that remembers the cue must reach the maximum return in every episode; ones
that see only the current observation must stay at chance, checked with a
two-sided binomial bound at level 1e-6 per test, so that neither a leak nor bad
luck can pass unnoticed.
"""

from __future__ import annotations

import math
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from scipy import stats

from envs import register_envs
from envs.rendering import PALETTE

LEVEL = 1e-6
MATCH_TASKS = ("gatedrl/PassiveMatch-v0", "gatedrl/ActiveMatch-v0")
TASKS_WITH_IMAGES = (*MATCH_TASKS, "gatedrl/Copy-v0")
# ActiveMatch from the centre of its 5 x 5 room: up, left, right, right, down, down, left, left
# stands diagonal to the centre in each quadrant, so every floor cell is seen within 8 moves.
TOUR = (0, 2, 3, 3, 1, 1, 2, 2)


@pytest.fixture(scope="module", autouse=True)
def _registered() -> None:
    register_envs()


def make(env_id: str, **kwargs) -> gym.Env:
    return gym.make(env_id, **kwargs)


def decode_match(obs: np.ndarray, num_colours: int, view_cells: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Vector observation -> (view codes [view_cells], slot codes [K], phase); -1 for an empty cell."""
    width = num_colours + 2
    cells = obs[:-3].reshape(view_cells + num_colours, width)
    codes = np.where(cells.sum(axis=1) > 0, cells.argmax(axis=1), -1)
    return codes[:view_cells], codes[view_cells:], int(np.argmax(obs[-3:]))


class MatchPolicy:
    """Collects every apple; in phase 3 picks the slot ``choose(slots, cue)``; remembers the cue iff ``memory``.

    With ``choice="colour"`` the action names the colour shown in the chosen slot.
    """

    def __init__(self, num_colours: int, view_cells: int, choose, memory: bool, choice: str) -> None:
        self.num_colours, self.view_cells, self.choose, self.memory = num_colours, view_cells, choose, memory
        self.choice = choice
        self.cue: int | None = None
        self.t = 0

    def reset(self) -> None:
        self.cue, self.t = None, 0

    def act(self, obs: np.ndarray) -> int:
        view, slots, phase = decode_match(obs, self.num_colours, self.view_cells)
        self.t += 1
        if phase == 0:
            seen = [int(c) for c in (*view, *slots) if 0 <= c < self.num_colours]
            if seen and self.memory:
                self.cue = seen[0]
            return TOUR[self.t - 1] if self.view_cells and self.t <= len(TOUR) else 0
        if phase == 1:
            return int(np.flatnonzero(slots == self.num_colours)[0])
        slot = self.choose(slots, self.cue)
        return int(slots[slot]) if self.choice == "colour" else slot


def play(env: gym.Env, policy, episodes: int, seed: int) -> tuple[np.ndarray, int]:
    """Returns of ``episodes`` episodes and the number of episodes whose info said ``success``."""
    returns, successes = np.zeros(episodes), 0
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        policy.reset()
        done = False
        while not done:
            obs, reward, terminated, truncated, info = env.step(policy.act(obs))
            returns[episode] += reward
            done = terminated or truncated
        successes += bool(info.get("success", False))
    return returns, successes


def assert_at_chance(successes: int, trials: int, p: float) -> None:
    low, high = stats.binom.ppf(LEVEL / 2, trials, p), stats.binom.isf(LEVEL / 2, trials, p)
    assert low <= successes <= high, f"{successes}/{trials} successes, chance {p} allows [{low}, {high}]"


@pytest.mark.parametrize("env_id", TASKS_WITH_IMAGES)
@pytest.mark.parametrize("obs_type", ["vector", "image"])
def test_gymnasium_checker_passes(env_id: str, obs_type: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(make(env_id, obs_type=obs_type, render_mode="rgb_array").unwrapped, skip_render_check=False)


def test_gymnasium_checker_passes_cartpole_no_velocity() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(make("gatedrl/CartPoleNoVelocity-v0").unwrapped)


@pytest.mark.parametrize("env_id", [*TASKS_WITH_IMAGES, "gatedrl/CartPoleNoVelocity-v0"])
def test_same_seed_same_episodes_other_seed_other_episodes(env_id: str) -> None:
    def trace(seed: int) -> list[np.ndarray]:
        env, actions = make(env_id), np.random.default_rng(0)
        out = [env.reset(seed=seed)[0]]
        for _ in range(60):
            obs, reward, terminated, truncated, _ = env.step(int(actions.integers(env.action_space.n)))
            out += [obs, np.array([reward, terminated, truncated])]
            if terminated or truncated:
                out.append(env.reset()[0])
        return out

    def same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
        return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b, strict=False))

    first = trace(3)
    assert same(first, trace(3))
    assert not same(first, trace(4))


@pytest.mark.parametrize("env_id", MATCH_TASKS)
@pytest.mark.parametrize("num_colours,delay,choice", [(4, 10, "colour"), (4, 10, "slot"), (3, 25, "slot")])
def test_match_with_memory_reaches_max_return(env_id: str, num_colours: int, delay: int, choice: str) -> None:
    env = make(env_id, num_colours=num_colours, delay=delay, choice=choice)
    view_cells = 9 if "Active" in env_id else 0
    choose = lambda slots, cue: int(np.flatnonzero(slots == cue)[0])  # noqa: E731
    policy = MatchPolicy(num_colours, view_cells, choose, memory=True, choice=choice)
    returns, successes = play(env, policy, episodes=100, seed=0)
    assert successes == 100
    np.testing.assert_allclose(returns, 1.0 + delay * 0.05)
    assert env.unwrapped.max_return == pytest.approx(1.0 + delay * 0.05)


MEMORYLESS_CHOICES = {
    "first_slot": lambda rng: lambda slots, cue: 0,
    "colour_zero": lambda rng: lambda slots, cue: int(np.flatnonzero(slots == 0)[0]),
    "random_slot": lambda rng: lambda slots, cue: int(rng.integers(len(slots))),
}


@pytest.mark.parametrize("env_id", MATCH_TASKS)
# The draws do not depend on ``choice``; in slot mode the rule that reads the slot order is the one to try.
@pytest.mark.parametrize("choice,rule", [*(("colour", r) for r in sorted(MEMORYLESS_CHOICES)), ("slot", "first_slot")])
def test_match_without_memory_stays_at_chance(env_id: str, rule: str, choice: str) -> None:
    num_colours, episodes = 4, 300
    view_cells = 9 if "Active" in env_id else 0
    choose = MEMORYLESS_CHOICES[rule](np.random.default_rng(1))
    policy = MatchPolicy(num_colours, view_cells, choose, memory=False, choice=choice)
    env = make(env_id, num_colours=num_colours, choice=choice)
    returns, successes = play(env, policy, episodes=episodes, seed=1000)
    assert_at_chance(successes, episodes, 1 / num_colours)
    # Apples are visible, so a memoryless policy still collects every one of them.
    np.testing.assert_allclose(returns, 0.5 + (returns > 1.0))


def test_active_match_cue_is_hidden_at_the_start() -> None:
    env = make("gatedrl/ActiveMatch-v0")
    for seed in range(100):
        view, slots, phase = decode_match(env.reset(seed=seed)[0], 4, 9)
        assert phase == 0 and not np.any((view >= 0) & (view < 4)) and np.all(slots == -1)


class CopyPolicy:
    """Copies the symbols when ``memory``; otherwise answers ``answer(rng)`` from the current observation only."""

    def __init__(self, num_symbols: int, memory: bool, rng: np.random.Generator) -> None:
        self.num_symbols, self.memory, self.rng = num_symbols, memory, rng
        self.seen: list[int] = []
        self.answered = 0

    def reset(self) -> None:
        self.seen, self.answered = [], 0

    def act(self, obs: np.ndarray) -> int:
        token = int(np.argmax(obs))
        if token < self.num_symbols and self.memory:
            self.seen.append(token)
        if token != self.num_symbols + 1:
            return 0
        self.answered += 1
        return self.seen[self.answered - 1] if self.memory else int(self.rng.integers(self.num_symbols))


@pytest.mark.parametrize("length,delay", [(3, 10), (5, 40)])
def test_copy_with_memory_reaches_max_return(length: int, delay: int) -> None:
    env = make("gatedrl/Copy-v0", length=length, delay=delay)
    returns, successes = play(env, CopyPolicy(4, memory=True, rng=np.random.default_rng(0)), episodes=100, seed=0)
    np.testing.assert_allclose(returns, 1.0)
    assert successes == 100


def test_copy_without_memory_stays_at_chance() -> None:
    length, episodes = 3, 300
    env = make("gatedrl/Copy-v0", length=length)
    returns, successes = play(env, CopyPolicy(4, memory=False, rng=np.random.default_rng(2)), episodes=episodes, seed=0)
    correct = np.round(returns * length).astype(int)
    assert_at_chance(int(correct.sum()), episodes * length, 1 / 4)
    assert successes == int(np.sum(correct == length))


def cartpole_returns(policy, episodes: int = 10) -> np.ndarray:
    env = make("gatedrl/CartPoleNoVelocity-v0")
    returns = np.zeros(episodes)
    for episode in range(episodes):
        obs, _ = env.reset(seed=episode)
        previous, done = obs, False
        while not done:
            action = policy(obs, previous)
            previous = obs
            obs, reward, terminated, truncated, _ = env.step(action)
            returns[episode] += reward
            done = terminated or truncated
    return returns


def test_cartpole_no_velocity_needs_memory() -> None:
    assert make("gatedrl/CartPoleNoVelocity-v0").observation_space.shape == (2,)
    tau = 0.02  # CartPole's integration step: velocities from the difference of two observations

    def with_memory(obs: np.ndarray, previous: np.ndarray) -> int:
        x_dot, theta_dot = (obs - previous) / tau
        return int(0.1 * obs[0] + 0.5 * x_dot + 10.0 * obs[1] + 2.0 * theta_dot > 0)

    np.testing.assert_array_equal(cartpole_returns(with_memory), 500.0)
    # The same controller with the velocities it cannot see set to zero, and "push towards the lean".
    assert cartpole_returns(lambda obs, previous: int(0.1 * obs[0] + 10.0 * obs[1] > 0)).mean() < 100
    assert cartpole_returns(lambda obs, previous: int(obs[1] > 0)).mean() < 100


def image_codes(image: np.ndarray, rows: int, cols: int, num_colours: int) -> np.ndarray:
    """Codes of a ``rows x cols`` grid painted into ``image``, read at each cell's centre pixel."""
    cell = image.shape[0] // max(rows, cols)
    colours = {tuple(int(v) for v in PALETTE[c]): c for c in range(num_colours)}
    colours.update({(255, 255, 255): num_colours, (128, 128, 128): num_colours + 1, (0, 0, 0): -1})
    centres = [image[r * cell + cell // 2, c * cell + cell // 2] for r in range(rows) for c in range(cols)]
    return np.array([colours[tuple(int(v) for v in pixel)] for pixel in centres])


@pytest.mark.parametrize("env_id", MATCH_TASKS)
@pytest.mark.parametrize("num_colours", [3, 4, 6])
def test_match_image_shows_what_the_vector_shows(env_id: str, num_colours: int) -> None:
    view_cells = 9 if "Active" in env_id else 0
    vector_env = make(env_id, num_colours=num_colours)
    image_env = make(env_id, num_colours=num_colours, obs_type="image")
    cols = math.ceil(math.sqrt(num_colours))
    rows = math.ceil(num_colours / cols)
    vector, image = vector_env.reset(seed=5)[0], image_env.reset(seed=5)[0]
    for t in range(vector_env.unwrapped.episode_length):
        view, slots, phase = decode_match(vector, num_colours, view_cells)
        if phase == 0 and view_cells:
            np.testing.assert_array_equal(image_codes(image, 3, 3, num_colours), view)
        else:
            np.testing.assert_array_equal(image_codes(image, rows, cols, num_colours)[:num_colours], slots)
        action = TOUR[t] if view_cells and t < len(TOUR) else t % num_colours
        vector, image = vector_env.step(action)[0], image_env.step(action)[0]


def test_copy_image_shows_what_the_vector_shows() -> None:
    vector_env, image_env = make("gatedrl/Copy-v0"), make("gatedrl/Copy-v0", obs_type="image")
    vector, image = vector_env.reset(seed=2)[0], image_env.reset(seed=2)[0]
    for _ in range(vector_env.unwrapped.episode_length):
        token = int(np.argmax(vector))
        # Symbols in palette colours, blank black, go marker white; one colour fills the image.
        expected = {4: (0, 0, 0), 5: (255, 255, 255)}.get(token, tuple(PALETTE[min(token, 3)]))
        assert np.all(image == np.array(expected, dtype=np.uint8))
        vector, image = vector_env.step(0)[0], image_env.step(0)[0]


@pytest.mark.parametrize(
    "env_id,kwargs",
    [
        ("gatedrl/PassiveMatch-v0", {"num_colours": 9}),
        ("gatedrl/PassiveMatch-v0", {"delay": -1}),
        ("gatedrl/PassiveMatch-v0", {"obs_type": "pixels"}),
        ("gatedrl/PassiveMatch-v0", {"choice": "walk"}),
        ("gatedrl/ActiveMatch-v0", {"room_size": 4}),
        ("gatedrl/Copy-v0", {"length": 0}),
    ],
)
def test_bad_task_options_are_refused(env_id: str, kwargs: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        make(env_id, **kwargs)
