"""The built distributions carry what the installed package needs at run time.

Both tests build from a copy of the source in a temporary directory with the project's own build
backend (no network, no build isolation), then read the archive: a file that exists only in the
source tree cannot make them pass. ``.ci/package_smoke.sh`` goes further: it installs the wheel into
a fresh environment and runs it.
"""

import shutil
import subprocess
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

import rnnkit

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "rnnkit"


def _source_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "source"
    shutil.copytree(ROOT / "src", copy / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "*.py[co]"))
    for name in ("pyproject.toml", "README.md", "LICENSE", "MANIFEST.in", "Makefile"):
        shutil.copy2(ROOT / name, copy / name)
    for folder in ("tests", "docs"):
        shutil.copytree(ROOT / folder, copy / folder, ignore=shutil.ignore_patterns("__pycache__", "*.py[co]"))
    return copy


def _package_files() -> set[str]:
    """Every file of the package in the source tree, as ``rnnkit/...`` (caches and bytecode left out)."""
    return {
        path.relative_to(PACKAGE.parent).as_posix()
        for path in PACKAGE.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".pyc", ".pyo")
    }


def _build(tmp_path: Path, kind: str) -> Path:
    """Build a ``"wheel"`` or an ``"sdist"`` from a copy of the source; return the archive."""
    source, out = _source_copy(tmp_path), tmp_path / "dist"
    if kind == "wheel":
        command = ["-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", str(out), str(source)]
    else:
        command = ["-m", "build", "--sdist", "--no-isolation", "--outdir", str(out), str(source)]
    result = subprocess.run([sys.executable, *command], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (archive,) = out.iterdir()
    return archive


@pytest.mark.slow
def test_wheel_carries_the_engine_source_and_every_package_file(tmp_path):
    wheel = _build(tmp_path, "wheel")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        assert "rnnkit/engine/csrc/engine.cpp" in names
        assert archive.read("rnnkit/engine/csrc/engine.cpp") == (PACKAGE / "engine" / "csrc" / "engine.cpp").read_bytes()
        assert "rnnkit/py.typed" in names
        missing = _package_files() - names
        assert not missing, f"files of the package left out of the wheel: {sorted(missing)}"
        info = wheel.name.split("-")[0] + "-" + wheel.name.split("-")[1] + ".dist-info"
        metadata = Parser().parsestr(archive.read(f"{info}/METADATA").decode())
        entry_points = archive.read(f"{info}/entry_points.txt").decode()
    assert wheel.name == f"rnnkit-{rnnkit.__version__}-py3-none-any.whl"
    assert metadata["Version"] == rnnkit.__version__
    assert metadata["License-Expression"] == "Apache-2.0" and metadata["Requires-Python"]
    assert any(requirement.startswith("torch>=") for requirement in metadata.get_all("Requires-Dist"))
    assert metadata["Description-Content-Type"] == "text/markdown" and "pip install rnnkit" in metadata.get_payload()
    assert "rnnkit = rnnkit.cli.main:main" in entry_points


@pytest.mark.slow
def test_sdist_carries_the_engine_source_and_the_tests(tmp_path):
    pytest.importorskip("build", reason="the dev extra installs build")
    sdist = _build(tmp_path, "sdist")
    assert sdist.name == f"rnnkit-{rnnkit.__version__}.tar.gz"
    with tarfile.open(sdist) as archive:
        prefix = f"rnnkit-{rnnkit.__version__}/"
        names = {name.removeprefix(prefix) for name in archive.getnames()}
    missing = {f"src/{name}" for name in _package_files()} - names
    assert not missing, f"files of the package left out of the sdist: {sorted(missing)}"
    assert {"pyproject.toml", "LICENSE", "README.md", "tests/conftest.py", "docs/engine.md"} <= names
