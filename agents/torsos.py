"""Torsos: observation ``[N, *obs_shape]`` -> features ``[N, out_features]`` (time folded into N).

- ``MLPTorso``: any supported space (``agents/spaces.py`` flattens it), then ReLU layers
  (``Linear -> LayerNorm -> ReLU`` with ``layer_norm``).
- ``ShallowConvTorso``: IMPALA's shallow network (Espeholt et al. 2018, Fig. 3 left):
  conv 8x8 stride 4 (16 ch), conv 4x4 stride 2 (32 ch), fc 256, ReLU after each.
- ``DeepConvTorso``: IMPALA's deep residual network (Fig. 3 right): three sections of
  16, 32, 32 channels, each conv 3x3 -> max-pool 3x3 stride 2 -> two residual blocks
  (ReLU, conv 3x3, ReLU, conv 3x3, + skip); then ReLU, fc 256, ReLU.

The conv torsos read ``(H, W, C)`` images (the gymnasium layout) and scale ``uint8`` pixels to [0, 1].
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import torch
from torch import Tensor, nn

from agents import spaces
from agents.initialisation import RELU_GAIN, orthogonal_

TORSOS = ("auto", "mlp", "shallow_conv", "deep_conv")


class MLPTorso(nn.Module):
    """Flatten-and-encode the observation (``spaces.encode``), then ``Linear [-> LayerNorm] -> ReLU`` per size."""

    def __init__(self, observation_space: gym.Space, sizes: tuple[int, ...], layer_norm: bool = False) -> None:
        super().__init__()
        self.observation_space = observation_space
        layers: list[nn.Module] = []
        width = spaces.flat_size(observation_space)
        for size in sizes:
            norm = [nn.LayerNorm(size)] if layer_norm else []
            layers += [nn.Linear(width, size), *norm, nn.ReLU()]
            width = size
        self.layers = nn.Sequential(*layers)
        self.out_features = width

    def forward(self, obs: Any) -> Tensor:
        """``obs [N, *shape]`` (nested for Dict/Tuple) -> ``[N, out_features]``."""
        return self.layers(spaces.encode(self.observation_space, obs))


def _image_to_nchw(space: gym.spaces.Box, obs: Tensor) -> Tensor:
    """``[N, H, W, C]`` raw pixels -> ``[N, C, H, W]`` float in [0, 1] for ``uint8``."""
    return spaces.to_float(space, obs).permute(0, 3, 1, 2)


def _conv_output_size(body: nn.Module, image_shape: tuple[int, int, int], name: str) -> int:
    """Features that ``body`` produces for one ``(H, W, C)`` image; refuse images too small for it."""
    height, width, channels = image_shape
    try:
        with torch.no_grad():
            out = body(torch.zeros(1, channels, height, width))
    except RuntimeError as error:
        raise ValueError(f"Images of shape {image_shape} are too small for the {name} torso ({error})") from None
    return int(out.shape[1])


class ShallowConvTorso(nn.Module):
    """IMPALA's shallow conv net (Espeholt et al. 2018): 2 convs then ``fc_size`` units."""

    def __init__(self, observation_space: gym.spaces.Box, fc_size: int = 256) -> None:
        super().__init__()
        self.observation_space = observation_space
        channels = observation_space.shape[2]
        # No padding, as in IMPALA/TorchBeast: an 84x84 frame gives 20x20 then 9x9 maps.
        self.convs = nn.Sequential(
            nn.Conv2d(channels, 16, kernel_size=8, stride=4),
            nn.ReLU(),
            nn.Conv2d(16, 32, kernel_size=4, stride=2),
            nn.ReLU(),
            nn.Flatten(),
        )
        conv_features = _conv_output_size(self.convs, observation_space.shape, "shallow_conv")
        self.fc = nn.Sequential(nn.Linear(conv_features, fc_size), nn.ReLU())
        self.out_features = fc_size

    def forward(self, obs: Tensor) -> Tensor:
        """``obs [N, H, W, C]`` -> ``[N, fc_size]``."""
        return self.fc(self.convs(_image_to_nchw(self.observation_space, obs)))


class ResidualBlock(nn.Module):
    """``x + conv(relu(conv(relu(x))))`` with 3x3 same-size convolutions."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.conv1 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv1(torch.relu(self.conv0(torch.relu(x))))


def _conv_section(in_channels: int, out_channels: int) -> nn.Sequential:
    """One IMPALA deep section: conv 3x3, max-pool 3x3 stride 2 (halves H and W), two residual blocks."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1),
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
        ResidualBlock(out_channels),
        ResidualBlock(out_channels),
    )


class DeepConvTorso(nn.Module):
    """IMPALA's deep residual conv net (Espeholt et al. 2018), sections of ``channels``, then ``fc_size`` units."""

    def __init__(
        self, observation_space: gym.spaces.Box, channels: tuple[int, ...] = (16, 32, 32), fc_size: int = 256
    ) -> None:
        super().__init__()
        self.observation_space = observation_space
        sections: list[nn.Module] = []
        width = observation_space.shape[2]
        for out_channels in channels:
            sections.append(_conv_section(width, out_channels))
            width = out_channels
        self.convs = nn.Sequential(*sections, nn.ReLU(), nn.Flatten())
        conv_features = _conv_output_size(self.convs, observation_space.shape, "deep_conv")
        self.fc = nn.Sequential(nn.Linear(conv_features, fc_size), nn.ReLU())
        self.out_features = fc_size

    def forward(self, obs: Tensor) -> Tensor:
        """``obs [N, H, W, C]`` -> ``[N, fc_size]``."""
        return self.fc(self.convs(_image_to_nchw(self.observation_space, obs)))


def make_torso(
    observation_space: gym.Space, torso: str, mlp_sizes: tuple[int, ...], layer_norm: bool = False
) -> nn.Module:
    """The torso named by ``torso`` (``"auto"``: a conv net for uint8 images, else an MLP), initialised.

    Raise ``ValueError`` for an unsupported space, an unknown torso, a conv torso on a non-image, or
    ``layer_norm`` with a conv torso (it applies to the MLP's layers only).
    """
    spaces.check_observation_space(observation_space)
    if spaces.flat_size(observation_space) == 0:
        raise ValueError(f"Observation space {observation_space} has no features")
    if torso not in TORSOS:
        raise ValueError(f"Unknown torso {torso!r}; choose from {TORSOS}")
    if torso == "auto":
        torso = "shallow_conv" if spaces.is_image(observation_space) else "mlp"
    if torso == "mlp":
        module: nn.Module = MLPTorso(observation_space, tuple(mlp_sizes), layer_norm)
    else:
        if layer_norm:
            raise ValueError(f"agent.layer_norm applies to the MLP torso only, not to {torso}; use agent.torso=mlp")
        is_rank3_box = isinstance(observation_space, gym.spaces.Box) and len(observation_space.shape) == 3
        if not is_rank3_box:
            raise ValueError(f"The {torso} torso needs an (H, W, C) Box observation, got {observation_space}")
        module = ShallowConvTorso(observation_space) if torso == "shallow_conv" else DeepConvTorso(observation_space)
    return orthogonal_(module, gain=RELU_GAIN)
