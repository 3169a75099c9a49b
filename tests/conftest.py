import os

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _single_threaded():
    """Every test runs torch on one thread. The tests' tensors are tiny: on a CPU shared with other
    processes (two cores here, several engineers' runs), intra-op threads spin and wait instead of
    helping, making a test several times slower. Nothing under test depends on the thread count (the
    engine splits a batch over threads only for batches far larger than any test uses)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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


@pytest.fixture
def one_thread():
    """Tiny models run fastest on one thread, and stay fast when another process shares the CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def cli_error(capsys):
    """``cli_error(argv)``: run ``rnnkit argv``, assert exit status 2 and one stderr line, return that line."""
    from rnnkit.cli.main import main

    def run(argv: list[str]) -> str:
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "Traceback" not in err
        return err

    return run
