"""Build the C++ engine on first use with PyTorch's extension mechanism, and cache it.

The build is keyed by the CPU's instruction-set flags and the torch version (it compiles with
``-march=native``), so a cache directory shared between different machines never loads a library
built for another CPU or another torch. Set ``RNNKIT_ENGINE=python`` to skip the build and use the
pure-PyTorch fallback.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import sys
import warnings
from pathlib import Path

import torch

SOURCE = Path(__file__).with_name("csrc") / "engine.cpp"
_state: dict[str, object] = {}


def _cpu_key() -> str:
    flags = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                flags = line
                break
    except OSError:
        pass
    digest = hashlib.sha256(f"{flags}|{torch.__version__}|{sys.version_info[:2]}".encode())
    digest.update(SOURCE.read_bytes())
    return digest.hexdigest()[:12]


def extension():
    """The compiled engine module, or ``None`` when it cannot be built here (cached either way)."""
    if "module" in _state:
        return _state["module"]
    module = None
    if os.environ.get("RNNKIT_ENGINE", "").lower() != "python":
        module = _load()
    _state["module"] = module
    return module


def _compile_flags() -> list[str]:
    # -march=native lets gcc vectorise the gate loops with the widest vectors this CPU has; the build
    # is keyed by the CPU's flags (see _cpu_key), so the result never runs on another CPU.
    native = ["-march=native"] if platform.machine().lower() in ("x86_64", "amd64") else []
    return ["-O3", *native, "-fno-math-errno", "-fno-trapping-math"]


def _announce_build(cpp_extension, name: str) -> None:
    try:
        built = any(Path(cpp_extension._get_build_directory(name, verbose=False)).glob(f"{name}*.so"))
    except Exception:  # a private helper of torch's; if it moves, just announce
        built = False
    if not built:
        print("rnnkit: compiling the fused CPU recurrent engine (first use only, about a minute)...",
              file=sys.stderr, flush=True)


def _load():
    from torch.utils import cpp_extension

    # pip installs ninja next to the interpreter; a venv used without activation lacks it on PATH.
    scripts = Path(sys.executable).parent
    if shutil.which("ninja") is None and (scripts / "ninja").exists():
        os.environ["PATH"] = f"{scripts}{os.pathsep}{os.environ.get('PATH', '')}"
    name = f"rnnkit_engine_{_cpu_key()}"
    _announce_build(cpp_extension, name)
    try:
        return cpp_extension.load(name=name, sources=[str(SOURCE)], extra_cflags=_compile_flags(), verbose=False)
    except Exception as error:  # no compiler, no ninja, unsupported platform...
        warnings.warn(
            f"rnnkit: could not build the fused CPU engine ({type(error).__name__}: {error}); using the "
            "pure-PyTorch engine, which gives the same results more slowly. Install a C++ compiler and "
            "ninja to get the fast path.",
            RuntimeWarning,
            stacklevel=3,
        )
        return None
