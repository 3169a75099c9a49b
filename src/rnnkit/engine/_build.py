"""Build the C++ engine on first use with PyTorch's extension mechanism, and cache it.

The build goes to a per-user cache, never next to the installed package (site-packages may be
read-only): ``$RNNKIT_ENGINE_CACHE`` if set, else PyTorch's extension root (``$TORCH_EXTENSIONS_DIR``,
else ``~/.cache/torch_extensions/py3XX_cpu``), one directory per build. The build is keyed by the CPU's
instruction-set flags, the torch and Python versions and the source (it compiles with
``-march=native``), so a cache directory shared between different machines never loads a library
built for another CPU or another torch. The first build is announced on stderr; later processes load
the cached library.

Whatever goes wrong (no compiler, no ninja, a missing source file, an unwritable cache, a failed
compile), ``extension()`` returns ``None`` after one ``RuntimeWarning`` of one line naming the cause
and the fix, and the engine runs the same loops in PyTorch. Set ``RNNKIT_ENGINE=python`` to skip the
build altogether.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import torch

SOURCE = Path(__file__).with_name("csrc") / "engine.cpp"
CACHE_ENV = "RNNKIT_ENGINE_CACHE"
_state: dict[str, object] = {}


class BuildProblem(Exception):
    """A reason the engine cannot be built here, with the fix to suggest."""

    def __init__(self, reason: str, fix: str):
        super().__init__(reason)
        self.fix = fix


_DEFAULT_FIX = ("Install a C++ compiler (g++ or clang++) and ninja to get the fast path, or set RNNKIT_ENGINE=python "
                "to skip the build")


def _cpu_key(source: Path) -> str:
    flags = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                flags = line
                break
    except OSError:
        pass
    digest = hashlib.sha256(f"{flags}|{torch.__version__}|{sys.version_info[:2]}".encode())
    digest.update(source.read_bytes())
    return digest.hexdigest()[:12]


def cache_root() -> Path:
    """The directory that holds engine builds (one subdirectory each); see the module docstring."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser()
    root = os.environ.get("TORCH_EXTENSIONS_DIR")
    if root:
        return Path(root).expanduser()
    from torch.utils import cpp_extension

    suffix = f"py{sys.version_info.major}{sys.version_info.minor}{getattr(sys, 'abiflags', '')}"
    if torch.version.hip:
        accelerator = f"rocm{torch.version.hip.replace('.', '')}"
    elif torch.version.cuda:
        accelerator = f"cu{torch.version.cuda.replace('.', '')}"
    else:
        accelerator = "cpu"
    return Path(cpp_extension.get_default_build_root()) / f"{suffix}_{accelerator}"


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


def _load():
    log: list[str] = []
    build_dir: Path | None = None
    try:
        source = SOURCE
        if not source.is_file():
            raise BuildProblem(f"its source {source} is missing from this installation",
                               "Reinstall rnnkit from a complete wheel or sdist, or set RNNKIT_ENGINE=python")
        name = f"rnnkit_engine_{_cpu_key(source)}"
        build_dir = cache_root() / name
        try:
            build_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise BuildProblem(f"cannot create the cache directory {build_dir} ({error.strerror or error})",
                               f"Set {CACHE_ENV} to a writable directory, or RNNKIT_ENGINE=python") from error
        with _exclusive(build_dir), _quiet_torch(log), _ninja_on_path():
            if not any(build_dir.glob(f"{name}*.so")) and not any(build_dir.glob(f"{name}*.pyd")):
                _check_compiler()  # only to build: a library built earlier loads without one
                print(f"rnnkit: compiling the fused CPU recurrent engine into {build_dir} "
                      "(first use only, about a minute)...", file=sys.stderr, flush=True)
            from torch.utils import cpp_extension

            return cpp_extension.load(name=name, sources=[str(source)], extra_cflags=_compile_flags(),
                                      build_directory=str(build_dir), verbose=False)
    except Exception as error:  # the fallback gives the same results: never let a build problem escape
        _warn(error, log, build_dir)
        return None


@contextlib.contextmanager
def _ninja_on_path():
    """Put the ninja that pip installed with rnnkit first on PATH while PyTorch builds or loads.

    Always the same ninja, whatever PATH the process has: a venv used without activation has its ninja
    off PATH, and a different ninja would find the cache's build log "too old" and rebuild.
    """
    try:
        import ninja

        directory = Path(ninja.BIN_DIR)
    except (ImportError, AttributeError):
        directory = Path(sys.executable).parent
    path = os.environ.get("PATH", "")
    if (directory / "ninja").exists() or (directory / "ninja.exe").exists():
        os.environ["PATH"] = f"{directory}{os.pathsep}{path}"
    try:
        if shutil.which("ninja") is None:
            raise BuildProblem("ninja is not installed",
                               "pip install ninja (an rnnkit dependency), or set RNNKIT_ENGINE=python")
        yield
    finally:
        os.environ["PATH"] = path


def _check_compiler() -> None:
    """Fail early, with a plain reason and before announcing a build, when there is no working compiler."""
    from torch.utils import cpp_extension

    compiler = cpp_extension.get_cxx_compiler()
    if shutil.which(compiler) is None:
        raise BuildProblem(f"no C++ compiler: {compiler!r} is not on PATH", _DEFAULT_FIX)
    try:
        subprocess.run([compiler, "--version"], capture_output=True, check=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as error:
        status = f"exited with status {error.returncode}" if isinstance(error, subprocess.CalledProcessError) else "failed"
        raise BuildProblem(f"the C++ compiler {compiler!r} does not work (`{compiler} --version` {status})",
                           "Point CXX at a working g++ or clang++ to get the fast path, or set RNNKIT_ENGINE=python "
                           "to skip the build") from error


@contextlib.contextmanager
def _exclusive(build_dir: Path):
    """Hold a lock that the OS drops when the process dies, so one process builds and the others wait.

    PyTorch's own lock is a plain file; a build killed midway (Ctrl-C) leaves it behind and every
    later load would wait on it forever. Under this lock no other rnnkit build is running, so a
    leftover file is stale and is removed.
    """
    try:
        import fcntl
    except ImportError:  # Windows: PyTorch's lock alone
        yield
        return
    with open(build_dir / "rnnkit-build.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            (build_dir / "lock").unlink(missing_ok=True)
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def _quiet_torch(log: list[str]):
    """Collect what PyTorch's extension builder logs or warns (compiler checks, with tracebacks) into
    ``log`` instead of printing it: a failed build is reported once, by ``_warn``."""
    logger = logging.getLogger("torch.utils.cpp_extension")

    class Collect(logging.Handler):
        def emit(self, record):
            log.append(self.format(record))

    handler = Collect()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate
        log.extend(f"{w.category.__name__}: {w.message}" for w in caught)


def _reason(error: Exception, lines: list[str]) -> tuple[str, str]:
    """One short line saying why the build failed, and the fix to suggest."""
    if isinstance(error, BuildProblem):
        return lines[0], error.fix
    fix = _DEFAULT_FIX
    if isinstance(error, subprocess.CalledProcessError):  # PyTorch's compiler checks
        command = " ".join(map(str, error.cmd)) if isinstance(error.cmd, (list, tuple)) else str(error.cmd)
        reason = f"`{command}` exited with status {error.returncode}"
        fix = "Point CXX at a working g++ or clang++ to get the fast path, or set RNNKIT_ENGINE=python to skip the build"
    elif lines[0].startswith("Error building extension"):
        # PyTorch puts the whole ninja log in the message; the compiler's first error says what went wrong.
        errors = [line.strip() for line in lines[1:] if "error" in line.lower() and not line.startswith("FAILED")]
        reason = f"the compile failed: {errors[0]}" if errors else "the compile failed"
        fix = ("Please report this with the log (the compiler may be too old for PyTorch's headers); set "
               "RNNKIT_ENGINE=python to skip the build")
    else:
        reason = f"{type(error).__name__}: {lines[0]}"
    return (reason if len(reason) <= 200 else reason[:197] + "..."), fix


def _warn(error: Exception, log: list[str], build_dir: Path | None) -> None:
    text = str(error).strip()
    lines = text.splitlines() or [type(error).__name__]
    reason, fix = _reason(error, lines)
    where = ""
    if build_dir is not None and (len(lines) > 1 or log):
        details = build_dir / "build-error.log"
        try:
            details.write_text(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {type(error).__name__}\n{text}\n"
                               + "".join(f"{line}\n" for line in log))
            where = f"; details in {details}"
        except OSError:
            pass
    warnings.warn(
        f"rnnkit: could not build the fused CPU engine ({reason}{where}); using the pure-PyTorch engine, "
        f"which gives the same results more slowly. {fix}.",
        RuntimeWarning,
        stacklevel=4,
    )
