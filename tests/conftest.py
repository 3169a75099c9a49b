import os

import pytest
import torch


@pytest.fixture(autouse=True)
def _seed():
    """One seed controls every test's randomness."""
    torch.manual_seed(0)


def pytest_collection_modifyitems(config, items):
    skip_slow = pytest.mark.skip(reason="slow; set RNNKIT_SLOW=1 to run")
    skip_cuda = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "slow" in item.keywords and os.environ.get("RNNKIT_SLOW") != "1":
            item.add_marker(skip_slow)
        if "requires_cuda" in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip_cuda)
