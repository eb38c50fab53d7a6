"""Weights cross the Ray boundary as numpy arrays and come back as equal tensors."""

import warnings

import numpy as np
import torch

from actors.arrays import readonly_tensor, state_dict_from_numpy, state_dict_to_numpy


def test_state_dict_round_trip_is_exact_and_detached():
    module = torch.nn.LSTM(3, 4)
    weights = state_dict_to_numpy(module.state_dict())
    assert all(isinstance(v, np.ndarray) for v in weights.values())
    with torch.no_grad():
        next(module.parameters()).add_(1.0)  # the learner keeps training: the copy must not move
    restored = torch.nn.LSTM(3, 4)
    restored.load_state_dict(state_dict_from_numpy(weights))
    changed = [k for k, v in restored.state_dict().items() if not torch.equal(v, module.state_dict()[k])]
    assert changed == ["weight_ih_l0"]


def test_read_only_arrays_become_tensors_without_a_warning():
    array = np.arange(6, dtype=np.float32).reshape(2, 3)
    array.setflags(write=False)  # as Ray returns them
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tensor = readonly_tensor(array)
    assert torch.equal(tensor, torch.arange(6.0).reshape(2, 3))
