"""The config loader: presets, dotted overrides, validation messages, YAML round trip."""

from pathlib import Path

import pytest

from configs import Config, ConfigError, load_config, to_yaml, write_config
from configs.loader import parse_override

PRESETS = sorted(Path("configs").glob("*.yaml"))


def test_defaults_without_a_file():
    assert load_config() == Config()


def test_dotted_overrides_reach_nested_sections_with_their_types():
    cfg = load_config(
        None,
        [
            "agent.core.gate=ur",
            "learner.learning_rate=3e-4",  # YAML 1.1 reads this as a string
            "env.kwargs.delay=100",
            "agent.mlp_sizes=[32, 16]",
            "learner.grad_norm_clip=null",
            "env.wrappers=[{path: 'gymnasium.wrappers:FlattenObservation'}]",
        ],
    )
    assert cfg.agent.core.gate == "ur"
    assert cfg.learner.learning_rate == pytest.approx(3e-4)
    assert cfg.env.kwargs == {"delay": 100}
    assert cfg.agent.mlp_sizes == (32, 16)
    assert cfg.learner.grad_norm_clip is None
    assert cfg.env.wrappers[0].path == "gymnasium.wrappers:FlattenObservation"


def test_integral_float_is_accepted_for_an_integer():
    assert load_config(None, ["run.total_env_steps=1e5"]).run.total_env_steps == 100_000


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("agent.core.gat=ur", "unknown config key 'agent.core.gat'; did you mean 'agent.core.gate'?"),
        ("learnr.batch_size=4", "did you mean 'learner'?"),
        ("env.wrappers=[{pth: x}]", "did you mean 'env.wrappers[0].path'?"),
        ("agent.core.gate=urr", "is not one of: standard, tied, chrono"),
        ("agent.core.gate=urr", "did you mean 'ur'?"),
        ("learner.learning_rate=-1", "'learner.learning_rate' = -1.0 is out of range; allowed: (0.0, inf]"),
        ("learner.vtrace.lambda_=1.5", "allowed: [0.0, 1.0]"),
        ("actors.num_actors=1.5", "'actors.num_actors' = 1.5 (float) must be an integer"),
        ("actors.num_actors=0", "out of range"),
        ("env.id=[1, 2]", "must be a string"),
        ("learner.adam_betas=[0.9]", "must be a list of 2 values"),
        ("learner.adam_betas=[1.0,0.999]", "'learner.adam_betas[0]' = 1.0 is out of range; allowed: [0.0, 1.0)"),
        ("learner.adam_betas=[0.0,-0.5]", "'learner.adam_betas[1]' = -0.5 is out of range"),
        ("env=3", "'env' must be a mapping"),
        ("novalue", "is not of the form key.path=value"),
    ],
)
def test_bad_input_gets_one_line_naming_key_value_and_choices(override, expected):
    with pytest.raises(ConfigError) as error:
        load_config(None, [override])
    message = str(error.value)
    assert expected in message
    assert "\n" not in message


def test_missing_file_lists_presets(tmp_path):
    with pytest.raises(ConfigError, match="not found; presets in configs/"):
        load_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.name)
def test_every_preset_loads_and_round_trips_through_yaml(preset, tmp_path):
    cfg = load_config(preset, ["agent.core.options={t_max: 50}"])
    path = tmp_path / "resolved.yaml"
    write_config(cfg, path)
    assert load_config(path) == cfg
    assert to_yaml(load_config(path)) == to_yaml(cfg)


def test_config_is_frozen():
    cfg = load_config()
    with pytest.raises(AttributeError):
        cfg.learner.learning_rate = 1.0  # type: ignore[misc]


def test_override_values_are_read_as_yaml():
    assert parse_override("a.b=null") == ("a.b", None)
    assert parse_override("a=true") == ("a", True)
    assert parse_override("a= ur ") == ("a", "ur")
    assert parse_override("a=x=y") == ("a", "x=y")


DEFAULT = Path("configs/default.yaml")


def test_a_new_env_id_leaves_the_presets_env_kwargs_behind(caplog):
    assert load_config(DEFAULT).env.kwargs == {"delay": 10}  # the preset's own task arguments
    cfg = load_config(DEFAULT, ["env.id=CartPole-v1"])
    assert cfg.env.id == "CartPole-v1" and cfg.env.kwargs == {}
    notice = caplog.messages[-1]
    assert "\n" not in notice and "env.kwargs for gatedrl/PassiveMatch-v0 are dropped" in notice
    assert "env.kwargs.delay=10" in notice  # how to keep one


def test_kwargs_given_with_the_new_id_are_the_only_ones_it_gets():
    cfg = load_config(DEFAULT, ["env.kwargs.length=5", "env.id=gatedrl/Copy-v0"])
    assert cfg.env.kwargs == {"length": 5}


def test_the_same_env_id_keeps_its_kwargs(caplog):
    assert load_config(DEFAULT, ["env.id=gatedrl/PassiveMatch-v0"]).env.kwargs == {"delay": 10}
    assert load_config(DEFAULT, ["env.kwargs.delay=30"]).env.kwargs == {"delay": 30}
    assert not caplog.messages


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.name)
def test_cell_none_alone_reaches_the_memoryless_control_from_any_preset(preset):
    core = load_config(preset, ["agent.core.cell=none"]).agent.core
    assert (core.cell, core.gate, core.options) == ("none", "standard", {})


def test_cell_none_with_an_explicit_gate_names_the_command_that_works():
    with pytest.raises(ConfigError) as error:
        load_config(Path("configs/cartpole.yaml"), ["agent.core.cell=none", "agent.core.gate=ur", "run.seed=3"])
    message = str(error.value)
    assert "\n" not in message and "takes only agent.core.gate=standard, got 'ur'" in message
    assert message.endswith(
        "run: python run_impala.py --config configs/cartpole.yaml agent.core.cell=none agent.core.gate=standard run.seed=3"
    )
    core = load_config(None, ["agent.core.cell=none", "agent.core.gate=standard"]).agent.core
    assert (core.cell, core.gate) == ("none", "standard")
