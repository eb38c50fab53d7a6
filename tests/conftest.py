"""Shared test settings."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """Tests use tiny tensors, for which intra-op threads only add overhead (and on a loaded
    2-core machine, several-fold slowdowns); the training loop sets its own thread count."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
