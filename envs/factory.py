"""``make_env``: build any registered gymnasium environment from an ``EnvConfig``.

The order of wrappers, innermost first:

    gym.make(id, max_episode_steps, **kwargs)     time limit from the config or the id's spec
    Atari preprocessing (ALE/... ids, or "on")    gymnasium's AtariPreprocessing + 4-frame stack, HWC
    the config's wrappers, in order               "module:Name" with keyword arguments
    FlattenToVector (Dict/Tuple observations)     so every observation is one array
    reward clipping (clip_reward)                 gymnasium's ClipReward to [-c, c]
    CopyObservation, SeedOnFirstReset
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import gymnasium as gym
from gymnasium import spaces
from gymnasium.wrappers import AtariPreprocessing, ClipReward, FrameStackObservation

from configs.schema import EnvConfig
from envs.registration import register_envs, validate_env_id
from envs.wrappers import CopyObservation, FlattenToVector, FramesLast, SeedOnFirstReset

ATARI_FRAME_STACK = 4


def one_line(text: str) -> str:
    """Collapse whitespace so that an error message stays on one line."""
    return " ".join(str(text).split())


def load_wrapper(path: str) -> Callable[..., gym.Env]:
    """Import a wrapper named ``"module:Name"``; ``ValueError`` naming the path if that fails."""
    module_name, sep, attribute = path.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(
            f"wrapper path {path!r} must look like 'module:Name', e.g. 'gymnasium.wrappers:FlattenObservation'"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(one_line(f"wrapper path {path!r}: cannot import {module_name!r} ({exc})")) from exc
    wrapper = getattr(module, attribute, None)
    if wrapper is None or not callable(wrapper):
        raise ValueError(f"wrapper path {path!r}: module {module_name!r} has no callable {attribute!r}")
    return wrapper


def wants_atari_preprocessing(env_config: EnvConfig) -> bool:
    """``on`` always, ``off`` never, ``auto`` for ``ALE/...`` ids."""
    if env_config.atari_preprocessing == "auto":
        return env_config.id.rpartition(":")[2].startswith("ALE/")
    return env_config.atari_preprocessing == "on"


def atari_preprocessing(env: gym.Env) -> gym.Env:
    """The standard Atari pipeline (Mnih et al. 2015; IMPALA): 30 no-op starts, 4-frame max-pooled skip,
    84 x 84 greyscale, 4 frames stacked; observations uint8 ``[84, 84, 4]``.

    Lives are not episodes (``terminal_on_life_loss=False``), the modern evaluation convention.
    """
    if not hasattr(env.unwrapped, "ale"):
        raise ValueError(f"atari_preprocessing needs an Atari (ale-py) environment, got {env.unwrapped}")
    env = AtariPreprocessing(env, noop_max=30, frame_skip=4, screen_size=84, grayscale_obs=True)
    return FramesLast(FrameStackObservation(env, ATARI_FRAME_STACK))


def make_env(env_config: EnvConfig, seed: int) -> gym.Env:
    """Build the environment ``env_config`` describes, seeded by ``seed`` at its first reset.

    Observations are always single numpy arrays (or ints for ``Discrete`` spaces) that the
    caller may keep: ``Dict``/``Tuple`` spaces are flattened to float32 vectors.
    """
    register_envs()
    validate_env_id(env_config.id)
    kwargs = dict(env_config.kwargs)
    preprocess = wants_atari_preprocessing(env_config)
    if preprocess and "frameskip" in gym.spec(env_config.id.rpartition(":")[2]).kwargs:
        # AtariPreprocessing skips frames itself; the ALE must not skip as well.
        kwargs.setdefault("frameskip", 1)
    env = gym.make(env_config.id, max_episode_steps=env_config.max_episode_steps, **kwargs)
    if preprocess:
        env = atari_preprocessing(env)
    for wrapper_config in env_config.wrappers:
        env = load_wrapper(wrapper_config.path)(env, **wrapper_config.kwargs)
    if isinstance(env.observation_space, (spaces.Dict, spaces.Tuple)):
        env = FlattenToVector(env)
    if env_config.clip_reward is not None:
        env = ClipReward(env, -env_config.clip_reward, env_config.clip_reward)
    return SeedOnFirstReset(CopyObservation(env), seed)


def validate_env_config(env_config: EnvConfig) -> None:
    """Check the id, the wrapper paths and the keyword arguments by building (and closing) one env.

    Raises a one-line ``ValueError`` before anything starts; cheap enough for ``run_impala``.
    """
    validate_env_id(env_config.id)
    for wrapper_config in env_config.wrappers:
        load_wrapper(wrapper_config.path)
    try:
        env = make_env(env_config, seed=0)
    except Exception as exc:
        message = f"cannot build environment {env_config.id!r} (kwargs={dict(env_config.kwargs)}, wrappers="
        message += f"{[w.path for w in env_config.wrappers]}): {type(exc).__name__}: {exc}"
        raise ValueError(one_line(message)) from exc
    env.close()
