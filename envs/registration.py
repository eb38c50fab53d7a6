"""Registering the project's tasks with gymnasium, and checking that an id exists.

``register_envs()`` does it, idempotently: ``import envs`` calls it (as every suite
registers its ids on import), and ``make_env`` / ``validate_env_id`` call it again in
whichever process needs an environment, so a registry rebuilt since then still works.
Optional suites register themselves when their package is imported; the id's
prefix says which package to import, so ``popgym-...`` works without any import
in user code.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util

import gymnasium as gym

from envs.active_match import ActiveMatchEnv
from envs.cartpole_no_velocity import CartPoleNoVelocityEnv
from envs.copy_task import CopyEnv
from envs.passive_match import PassiveMatchEnv

NAMESPACE = "gatedrl"
# id -> (entry point, max_episode_steps). The memory tasks end by themselves.
TASKS = {
    f"{NAMESPACE}/PassiveMatch-v0": (PassiveMatchEnv, None),
    f"{NAMESPACE}/ActiveMatch-v0": (ActiveMatchEnv, None),
    f"{NAMESPACE}/Copy-v0": (CopyEnv, None),
    f"{NAMESPACE}/CartPoleNoVelocity-v0": (CartPoleNoVelocityEnv, 500),
}
# Optional environment suites: id prefix -> the package whose import registers them.
PLUGINS = {"popgym-": "popgym", "MiniGrid-": "minigrid", "BabyAI-": "minigrid", "ALE/": "ale_py"}
_NEAREST = 5


def register_envs() -> None:
    """Register the ``gatedrl/`` tasks with gymnasium's registry (a no-op when already there)."""
    for env_id, (entry_point, max_episode_steps) in TASKS.items():
        if env_id not in gym.registry:
            gym.register(env_id, entry_point=entry_point, max_episode_steps=max_episode_steps)


def plugin_for(env_id: str) -> str | None:
    """The optional package that registers ``env_id``, or None."""
    return next((package for prefix, package in PLUGINS.items() if env_id.startswith(prefix)), None)


def import_plugin(env_id: str) -> None:
    """Import the package that registers ``env_id`` (if any); ``ValueError`` if it is not installed."""
    package = plugin_for(env_id)
    if package is None:
        return
    if importlib.util.find_spec(package) is None:
        pip_name = {"ale_py": "ale-py"}.get(package, package)
        raise ValueError(f"environment id {env_id!r} needs the optional package {package} (pip install {pip_name})")
    module = importlib.import_module(package)
    gym.register_envs(module)


def _import_installed_plugins() -> None:
    """Import every installed optional suite, so that suggestions cover their ids too."""
    for package in sorted(set(PLUGINS.values())):
        if importlib.util.find_spec(package) is not None:
            importlib.import_module(package)


def nearest_ids(env_id: str, count: int = _NEAREST) -> list[str]:
    """Registered ids closest to ``env_id`` (difflib ratio), best first."""
    return difflib.get_close_matches(env_id, list(gym.registry), n=count, cutoff=0.4)


def validate_env_id(env_id: str) -> None:
    """Raise a one-line ``ValueError`` naming the nearest registered ids unless ``env_id`` can be made.

    Accepts gymnasium's ``"module:EnvId"`` form, importing ``module`` first.
    """
    register_envs()
    module, _, name = env_id.rpartition(":")
    if module:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ValueError(f"environment id {env_id!r}: cannot import module {module!r} ({exc})") from exc
    import_plugin(name)
    try:
        gym.spec(name)
        return
    except gym.error.Error:
        pass
    _import_installed_plugins()
    suggestions = nearest_ids(name)
    hint = ", ".join(suggestions) if suggestions else "none close; see gymnasium.pprint_registry()"
    raise ValueError(f"unknown environment id {env_id!r}; nearest registered ids: {hint}")
