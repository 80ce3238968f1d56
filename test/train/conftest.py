"""The trainer tests' fixtures (helpers in train_fixtures.py)."""

import pytest
import torch
from train_fixtures import workspace  # noqa: F401


@pytest.fixture(autouse=True)
def one_thread():
    """The tiny model's tensors are far too small to share among threads: on a busy 2-core
    machine two threads made a VAE pass 12x slower than one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
