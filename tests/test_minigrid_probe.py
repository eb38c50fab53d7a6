"""The MiniGrid-Memory diagnostic views and the supervised probe's labels (benchmarks/minigrid_memory_probe.py)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(importlib.util.find_spec("minigrid") is None, reason="minigrid not installed")

S7 = "MiniGrid-MemoryS7-v0"


def make(*wrappers):
    import gymnasium as gym
    import minigrid  # noqa: F401  (registers the MiniGrid ids)

    env = gym.make(S7)
    for wrapper in wrappers:
        env = wrapper(env)
    return env


def test_cue_at_start_shows_the_start_room_object_once_and_cue_in_view_always():
    from benchmarks.minigrid_memory_probe import CueAtStart, CueInView

    seen = set()
    for seed in range(12):
        once, always = make(CueAtStart), make(CueInView)
        obs_once, _ = once.reset(seed=seed)
        obs_always, _ = always.reset(seed=seed)
        grid = once.unwrapped.grid
        expected = {"key": 1, "ball": 2}[grid.get(1, 2).type]  # S7: the cue sits at (1, height // 2 - 1)
        seen.add(expected)
        assert obs_once["cue"] == obs_always["cue"] == expected
        for _ in range(3):
            obs_once, *_ = once.step(2)
            obs_always, *_ = always.step(2)
            assert obs_once["cue"] == 0 and obs_always["cue"] == expected
        assert once.observation_space["cue"].contains(obs_once["cue"])
    assert seen == {1, 2}


def test_face_cue_turns_the_agent_west_with_the_cue_in_view():
    from benchmarks.minigrid_memory_probe import FaceCue

    env = make(FaceCue)
    for seed in range(8):
        obs, _ = env.reset(seed=seed)
        assert obs["direction"] == env.unwrapped.agent_dir == 2
        # Facing west the view holds the cue (key 5 or ball 6) and not the other object: the two end
        # objects (one key, one ball) are behind the agent, so the observation was made after the turn.
        cue = {"key": 5, "ball": 6}[env.unwrapped.grid.get(1, 2).type]
        codes = obs["image"][..., 0]
        assert cue in codes and (11 - cue) not in codes


@pytest.mark.parametrize("follow_label", [True, False])
def test_the_scripted_route_ends_at_the_junction_and_its_label_is_the_matching_side(follow_label):
    from benchmarks.minigrid_memory_probe import TURN_LEFT, TURN_RIGHT, scripted_episode
    from configs import load_config
    from envs.factory import make_env

    config = load_config(None, [f"env.id={S7}"])
    env = make_env(config.env, seed=3)
    for _ in range(16):
        observations, actions, label = scripted_episode(env)
        assert len(observations) == len(actions) + 1 and env.unwrapped.agent_pos[1] == 3
        turn = label if follow_label else {TURN_LEFT: TURN_RIGHT, TURN_RIGHT: TURN_LEFT}[label]
        env.step(turn)
        _, reward, terminated, truncated, _ = env.step(2)
        assert terminated and not truncated
        assert (reward > 0.9) if follow_label else (reward == 0.0)


def test_episode_batch_pads_in_front_and_restarts_the_core_at_each_real_start():
    from benchmarks.minigrid_memory_probe import episode_batch

    short = ([np.full(2, 1.0), np.full(2, 2.0)], [2], 0)
    long = ([np.full(2, 5.0), np.full(2, 6.0), np.full(2, 7.0), np.full(2, 8.0)], [2, 2, 2], 1)
    batch = episode_batch([short, long])
    assert batch["obs"].shape == (4, 2, 2)
    np.testing.assert_array_equal(batch["obs"][:, 0, 0].numpy(), [1, 1, 1, 2])
    np.testing.assert_array_equal(batch["is_first"][:, 0].numpy(), [True, True, True, False])
    np.testing.assert_array_equal(batch["is_first"][:, 1].numpy(), [True, False, False, False])
    np.testing.assert_array_equal(batch["prev_action"][:, 0].numpy(), [0, 0, 0, 2])
    np.testing.assert_array_equal(batch["prev_action"][:, 1].numpy(), [0, 2, 2, 2])
    np.testing.assert_array_equal(batch["labels"].numpy(), [0, 1])


def test_the_supervised_probe_runs_and_reports():
    from benchmarks.minigrid_memory_probe import supervised_probe

    overrides = ["agent.mlp_sizes=[8]", "agent.core.hidden_size=8"]
    result = supervised_probe("cue_in_view", seed=0, overrides=overrides, batch_size=4, max_updates=3, log_every=1)
    assert result["episodes"] == 12 and np.isfinite(result["final_loss"]) and result["solved_at_update"] is None


def test_start_recorder_keeps_each_episodes_start_column_and_first_action():
    from benchmarks.minigrid_memory_probe import StartRecorder

    env = StartRecorder(make())
    expected = []
    for seed, first in enumerate([0, 2, 1, 2, 0]):
        env.reset(seed=seed)
        expected.append((int(env.unwrapped.agent_pos[0]), first))
        env.step(first)
        env.step(1 - first if first < 2 else 0)  # later actions are not recorded
    assert list(zip(env.starts, env.first_actions, strict=True)) == expected
    assert {x for x, _ in expected} <= {1, 2, 3, 4}  # S7 starts the agent in columns 1-4


def test_start_breakdown_groups_every_episode_by_its_start_column():
    from agents import Agent
    from benchmarks.minigrid_memory_probe import PRESET, start_breakdown
    from configs import load_config
    from envs.factory import make_env

    config = load_config(str(PRESET), ["agent.mlp_sizes=[8]", "agent.core.hidden_size=8", "env.max_episode_steps=12"])
    env = make_env(config.env, 0)
    agent = Agent(env.observation_space, env.action_space, config.agent)
    rows = start_breakdown(config.env, agent, episodes=24, seed=5)
    assert sum(row["episodes"] for row in rows) == 24
    assert [row["start_x"] for row in rows] == sorted({row["start_x"] for row in rows}) and rows[0]["start_x"] >= 1
    for row in rows:
        assert 0.0 <= row["success"] <= 1.0 and 0.0 <= row["first_action_turns"] <= 1.0
        assert 1 <= row["mean_length"] <= 12
