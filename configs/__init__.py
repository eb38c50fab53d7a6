"""Configuration: the frozen schema, YAML presets and the validating loader."""

from configs.loader import ConfigError, load_config, to_dict, to_yaml, write_config
from configs.schema import (
    ActorsConfig,
    AgentConfig,
    Config,
    CoreConfig,
    EnvConfig,
    LearnerConfig,
    PopArtConfig,
    RunConfig,
    VTraceConfig,
    WrapperConfig,
)

__all__ = [
    "ActorsConfig",
    "AgentConfig",
    "Config",
    "ConfigError",
    "CoreConfig",
    "EnvConfig",
    "LearnerConfig",
    "PopArtConfig",
    "RunConfig",
    "VTraceConfig",
    "WrapperConfig",
    "load_config",
    "to_dict",
    "to_yaml",
    "write_config",
]
