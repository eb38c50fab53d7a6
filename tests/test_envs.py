"""``make_env`` and ``validate_env_config``: ids, wrappers, seeding, clipping, time limits and adapters."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

import envs.registration
from configs.schema import EnvConfig, WrapperConfig
from envs import make_env, register_envs, validate_env_config, validate_env_id
from envs.wrappers import ActionSubset, CopyObservation, FlattenToVector, FramesLast


def installed(*modules: str) -> bool:
    return all(importlib.util.find_spec(module) is not None for module in modules)


class ScaleReward(gym.RewardWrapper):
    """Multiplies rewards by ``scale`` (named by path in the tests: ``tests.test_envs:ScaleReward``)."""

    def __init__(self, env: gym.Env, scale: float) -> None:
        super().__init__(env)
        self.scale = scale

    def reward(self, reward: float) -> float:
        return self.scale * reward


class ToyEnv(gym.Env):
    """Observation ``t`` (the step count) in the space given; the buffer is reused across steps."""

    def __init__(self, space: spaces.Space | None = None) -> None:
        self.observation_space = space or spaces.Box(0, 255, (2, 3), dtype=np.uint8)
        self.action_space = spaces.Discrete(2)
        self._buffer = np.zeros(self.observation_space.shape or (), dtype=np.uint8)
        self._t = 0

    def _obs(self) -> Any:
        if isinstance(self.observation_space, spaces.Dict):
            return {"pos": np.array([self._t, -self._t], np.float32), "dir": self._t % 4, "mission": "go"}
        if isinstance(self.observation_space, spaces.Tuple):
            return (self._t % 2, np.array([self._t], np.float32))
        self._buffer[...] = self._t
        return self._buffer

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        self._t = 0
        return self._obs(), {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        self._t += 1
        return self._obs(), 1.0, self._t >= 50, False, {}


def test_importing_envs_registers_its_ids_as_every_suite_does() -> None:
    code = "import envs, gymnasium; print(gymnasium.make('gatedrl/PassiveMatch-v0').spec.id)"
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "gatedrl/PassiveMatch-v0"


def test_register_envs_is_idempotent() -> None:
    register_envs()
    register_envs()
    assert {k for k in gym.registry if k.startswith("gatedrl/")} == set(envs.registration.TASKS)


def test_same_seed_same_start_and_actions_caller_seed_wins() -> None:
    def first(seed: int, reset_seed: int | None = None) -> tuple[np.ndarray, int]:
        env = make_env(EnvConfig(id="CartPole-v1"), seed=seed)
        return env.reset(seed=reset_seed)[0], int(env.action_space.sample())

    obs, _ = first(7)
    np.testing.assert_array_equal(obs, first(7)[0])
    assert not np.array_equal(obs, first(8)[0])
    np.testing.assert_array_equal(first(8, reset_seed=7)[0], obs)
    assert [first(7)[1] for _ in range(3)] == [first(7)[1]] * 3


@pytest.mark.parametrize(
    "bad_id,nearest",
    [
        ("gatedrl/PasiveMatch-v0", "gatedrl/PassiveMatch-v0"),
        ("CartPol-v1", "CartPole-v1"),
        ("CartPole-v9", "CartPole-v1"),
    ],
)
def test_unknown_id_names_nearest_ids_in_one_line(bad_id: str, nearest: str) -> None:
    for check in (
        validate_env_id,
        lambda i: validate_env_config(EnvConfig(id=i)),
        lambda i: make_env(EnvConfig(id=i), 0),
    ):
        with pytest.raises(ValueError, match="nearest registered ids") as info:
            check(bad_id)
        message = str(info.value)
        assert bad_id in message and nearest in message and "\n" not in message


def test_missing_optional_package_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "popgym" else real_find_spec(name, *a)
    )
    with pytest.raises(ValueError, match=r"pip install popgym"):
        validate_env_id("popgym-RepeatPreviousEasy-v0")


@pytest.mark.parametrize(
    "path,fragment",
    [
        ("gymnasium.wrappers.FlattenObservation", "must look like 'module:Name'"),
        ("no_such_module_xyz:Wrapper", "cannot import"),
        ("gymnasium.wrappers:NoSuchWrapper", "no callable 'NoSuchWrapper'"),
    ],
)
def test_bad_wrapper_path_is_refused_before_building(path: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment) as info:
        validate_env_config(EnvConfig(id="CartPole-v1", wrappers=(WrapperConfig(path=path),)))
    assert path in str(info.value) and "\n" not in str(info.value)


def test_bad_kwargs_are_refused_in_one_line() -> None:
    with pytest.raises(ValueError, match="gatedrl/Copy-v0.*no_such_option") as info:
        validate_env_config(EnvConfig(id="gatedrl/Copy-v0", kwargs={"no_such_option": 1}))
    assert "\n" not in str(info.value)
    validate_env_config(EnvConfig(id="gatedrl/Copy-v0", kwargs={"delay": 3}))


@pytest.mark.parametrize("scale,clip,expected", [(5.0, None, 5.0), (5.0, 1.0, 1.0), (-5.0, 2.0, -2.0), (0.5, 1.0, 0.5)])
def test_wrapper_kwargs_then_reward_clip(scale: float, clip: float | None, expected: float) -> None:
    wrapper = WrapperConfig(path="tests.test_envs:ScaleReward", kwargs={"scale": scale})
    env = make_env(EnvConfig(id="CartPole-v1", wrappers=(wrapper,), clip_reward=clip), seed=0)
    env.reset()
    assert env.step(0)[1] == expected


def test_time_limit_truncates_not_terminates() -> None:
    env = make_env(EnvConfig(id="gatedrl/Copy-v0", kwargs={"delay": 50}, max_episode_steps=7), seed=0)
    env.reset()
    flags = [env.step(0)[2:4] for _ in range(7)]
    assert flags == [(False, False)] * 6 + [(False, True)]


def test_flatten_dict_drops_text_and_one_hots_discrete() -> None:
    space = spaces.Dict(
        {"pos": spaces.Box(-9, 9, (2,), np.float32), "dir": spaces.Discrete(4), "mission": spaces.Text(10)}
    )
    env = FlattenToVector(ToyEnv(space))
    obs, _ = env.reset()
    for t in range(1, 4):
        obs = env.step(0)[0]
        # gymnasium flattens Dict keys in sorted order: dir (one-hot of 4), then pos.
        expected = np.array([*(float(t % 4 == k) for k in range(4)), t, -t], dtype=np.float32)
        np.testing.assert_array_equal(obs, expected)
        assert obs.dtype == np.float32 and env.observation_space.contains(obs)


def test_flatten_tuple() -> None:
    env = FlattenToVector(ToyEnv(spaces.Tuple([spaces.Discrete(2), spaces.Box(0, 99, (1,), np.float32)])))
    env.reset()
    np.testing.assert_array_equal(env.step(0)[0], [0.0, 1.0, 1.0])


def test_copy_observation_protects_reused_buffers() -> None:
    raw = ToyEnv()
    first, _ = raw.reset()
    raw.step(0)
    assert first[0, 0] == 1  # the toy environment really does overwrite what it returned
    env = CopyObservation(ToyEnv())
    first, _ = env.reset()
    second = env.step(0)[0]
    assert first[0, 0] == 0 and second[0, 0] == 1


def test_frames_last_orders_oldest_to_newest() -> None:
    # ToyEnv reuses its buffer, which FrameStackObservation would stack four times: copy first.
    env = FramesLast(gym.wrappers.FrameStackObservation(CopyObservation(ToyEnv()), 4))
    env.reset()
    for _ in range(5):
        obs = env.step(0)[0]
    assert obs.shape == (2, 3, 4) and env.observation_space.shape == (2, 3, 4)
    np.testing.assert_array_equal(obs[1, 2], [2, 3, 4, 5])


class RecordAction(ToyEnv):
    """``ToyEnv`` with five actions that records the last one it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.action_space = spaces.Discrete(5)
        self.last_action: int | None = None

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        self.last_action = action
        return super().step(action)


def test_action_subset_maps_each_choice_to_its_action() -> None:
    raw = RecordAction()
    env = ActionSubset(raw, actions=[4, 0, 2])
    env.reset()
    assert env.action_space == spaces.Discrete(3)
    for chosen, passed in [(0, 4), (1, 0), (2, 2)]:
        env.step(chosen)
        assert raw.last_action == passed


@pytest.mark.parametrize("actions", [[], [0, 0], [5], [-1]])
def test_action_subset_refuses_bad_actions_in_one_line(actions: list[int]) -> None:
    with pytest.raises(ValueError, match=r"one or more distinct actions in \[0, 4\]") as info:
        ActionSubset(RecordAction(), actions=actions)
    assert "\n" not in str(info.value)


def test_action_subset_needs_discrete_actions() -> None:
    with pytest.raises(ValueError, match="Discrete"):
        ActionSubset(gym.make("Pendulum-v1"), actions=[0])


def test_atari_preprocessing_on_refuses_non_atari_env() -> None:
    with pytest.raises(ValueError, match="Atari"):
        validate_env_config(EnvConfig(id="CartPole-v1", atari_preprocessing="on"))


@pytest.mark.skipif(not installed("ale_py", "cv2"), reason="ale-py and opencv-python-headless not installed")
def test_atari_preprocessing() -> None:
    env = make_env(EnvConfig(id="ALE/Pong-v5", clip_reward=1.0), seed=0)
    obs, _ = env.reset()
    assert obs.shape == (84, 84, 4) and obs.dtype == np.uint8 and env.observation_space.contains(obs)
    assert env.step(0)[0].flags["C_CONTIGUOUS"]
    raw = make_env(EnvConfig(id="ALE/Pong-v5", atari_preprocessing="off"), seed=0)
    assert raw.reset()[0].shape == (210, 160, 3)


@pytest.mark.skipif(not installed("popgym"), reason="popgym not installed")
@pytest.mark.filterwarnings("ignore:.*infos returned by:UserWarning")
@pytest.mark.parametrize(
    "env_id,shape",
    [("popgym-RepeatPreviousEasy-v0", ()), ("popgym-AutoencodeEasy-v0", (6,)), ("popgym-CountRecallEasy-v0", (2,))],
)
def test_popgym_builds(env_id: str, shape: tuple[int, ...]) -> None:
    validate_env_config(EnvConfig(id=env_id))
    env = make_env(EnvConfig(id=env_id), seed=0)
    obs, _ = env.reset()
    for _ in range(5):
        assert np.shape(obs) == shape and env.observation_space.contains(obs)
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            obs, _ = env.reset()


@pytest.mark.skipif(not installed("minigrid"), reason="minigrid not installed")
def test_minigrid_builds_as_vector_or_pixels() -> None:
    env = make_env(EnvConfig(id="MiniGrid-Empty-5x5-v0"), seed=0)
    obs, _ = env.reset()
    # 7 x 7 x 3 symbolic view, then the direction one-hot (gymnasium sorts Dict keys: direction first).
    assert obs.shape == (4 + 7 * 7 * 3,) and obs.dtype == np.float32 and env.observation_space.contains(obs)
    assert obs[:4].sum() == 1.0
    pixels = (
        WrapperConfig(path="minigrid.wrappers:RGBImgPartialObsWrapper"),
        WrapperConfig(path="minigrid.wrappers:ImgObsWrapper"),
    )
    env = make_env(EnvConfig(id="MiniGrid-Empty-5x5-v0", wrappers=pixels), seed=0)
    obs, _ = env.reset()
    assert obs.shape == (56, 56, 3) and obs.dtype == np.uint8
    assert env.step(2)[0].shape == (56, 56, 3)
    # MiniGrid's navigation actions only, by path as a preset names them.
    turn_and_walk = WrapperConfig(path="envs.wrappers:ActionSubset", kwargs={"actions": [0, 1, 2]})
    env = make_env(EnvConfig(id="MiniGrid-Empty-5x5-v0", wrappers=(turn_and_walk,)), seed=0)
    env.reset()
    assert env.action_space == spaces.Discrete(3)
    assert env.unwrapped.agent_dir == 0 and env.step(1)[0][:4].tolist() == [0.0, 1.0, 0.0, 0.0]
