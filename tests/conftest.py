import os

import pytest
import torch


@pytest.fixture(autouse=True)
def _seed():
    """One seed controls every test's randomness."""
    torch.manual_seed(0)


def pytest_collection_modifyitems(config, items):
    if os.environ.get("RNNKIT_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow; set RNNKIT_SLOW=1 to run")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
