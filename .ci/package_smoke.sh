#!/usr/bin/env bash
# Packaging smoke test: build the sdist and the wheel with the standard front end (python -m build:
# the sdist first, then the wheel from the unpacked sdist, so both must be complete), install the wheel
# into a fresh virtual environment (non-editable), and run .ci/package_smoke.py there from outside the
# source tree: once with the C++ compiler (the engine builds into a fresh cache and runs), then with no
# usable compiler (one warning, the PyTorch loops, the same numbers). Any failure fails CI.
#
# Usage: .ci/package_smoke.sh   (PYTHON: an interpreter with `build` installed; default .venv/bin/python,
#                                which `make` sets up with the dev extra)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}   # tiny models: one thread is fastest, and stays fast on a busy CI machine
TORCH=torch==2.13.0   # never unpinned: a range admitting newer versions downloads a multi-GB CUDA build
WORK=$(mktemp -d "${TMPDIR:-/tmp}/rnnkit-package-smoke.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
start=$SECONDS
step() { echo "package smoke [$((SECONDS - start))s]: $*"; }
fail() { echo "package smoke FAILED: $*" >&2; exit 1; }

(cd "$WORK" && "$PYTHON" -m build --version >/dev/null 2>&1) \
    || fail "$PYTHON lacks the build package: run make (the dev extra has it) or pip install build, or set PYTHON"

step "building the sdist and the wheel"
# from a copy of what a clone has (tracked files plus new, unignored ones): a stale src/*.egg-info left by
# an earlier build lists files that setuptools would otherwise keep packaging after the config dropped them
mkdir "$WORK/source"
git -C "$ROOT" ls-files -z --cached --others --exclude-standard \
    | while IFS= read -r -d '' file; do if [ -e "$ROOT/$file" ]; then printf '%s\0' "$file"; fi; done \
    | (cd "$ROOT" && xargs -0 cp --parents -t "$WORK/source") || fail "could not copy the source"
[ -f "$WORK/source/pyproject.toml" ] || fail "could not copy the source (is $ROOT a git checkout?)"
(cd "$WORK" && "$PYTHON" -m build --outdir "$WORK/dist" "$WORK/source" >"$WORK/build.log" 2>&1) \
    || { tail -40 "$WORK/build.log"; fail "python -m build"; }
sdist=$(ls "$WORK"/dist/rnnkit-*.tar.gz) && wheel=$(ls "$WORK"/dist/rnnkit-*.whl) || fail "no sdist or no wheel in $WORK/dist"
for archive in "$sdist" "$wheel"; do
    echo "  $(basename "$archive"): $(du -k "$archive" | cut -f1) KiB"
done

step "installing the wheel into a fresh virtual environment"
"$PYTHON" -m venv "$WORK/venv"
VENV_PY=$WORK/venv/bin/python
# pip's output goes to a log shown on failure; --no-compile: byte-compiling all of torch up front takes
# longer than the rest of the install, and Python compiles what is imported anyway
pip_install() {
    "$VENV_PY" -m pip install --no-compile "$@" >>"$WORK/pip.log" 2>&1 || { tail -40 "$WORK/pip.log"; fail "pip install $*"; }
}
pip_install "$TORCH"
pip_install "$wheel"
"$VENV_PY" -m pip check >/dev/null || fail "pip check: $("$VENV_PY" -m pip check)"

cp "$ROOT/.ci/package_smoke.py" "$WORK/smoke.py"
cd "$WORK"   # outside the source tree: only the installed package can be imported

# smoke NAME [ENV...] -- ARGS...: run smoke.py under env(1), keep its stderr in NAME.err, show it, fail on failure
smoke() {
    local name=$1; shift
    local env_args=()
    while [ "$1" != "--" ]; do env_args+=("$1"); shift; done; shift
    if ! env "${env_args[@]}" "$VENV_PY" smoke.py "$@" "$WORK" 2>"$WORK/$name.err"; then
        cat "$WORK/$name.err" >&2; fail "smoke test: $name"
    fi
    cat "$WORK/$name.err" >&2
    ! grep -q Traceback "$WORK/$name.err" || fail "$name: a traceback on stderr"
}

step "with a compiler: the engine builds into a fresh cache, then runs"
smoke engine RNNKIT_ENGINE_CACHE="$WORK/engine-cache" -- engine
[ "$(grep -c "compiling the fused CPU recurrent engine" "$WORK/engine.err")" = 1 ] || fail "the build was not announced exactly once"
ls "$WORK"/engine-cache/rnnkit_engine_*/rnnkit_engine_*.so >/dev/null || fail "no compiled engine in the cache"

step "the compiler gone (CXX unset, PATH with no c++/g++): the engine built above still loads from the cache"
smoke cached-engine -u CXX -u CC PATH="$WORK/venv/bin" RNNKIT_ENGINE_CACHE="$WORK/engine-cache" -- engine --layers-only
! grep -q "compiling the fused CPU" "$WORK/cached-engine.err" || fail "the cached engine was compiled again"

step "without a compiler (CXX unset, PATH with no c++/g++): one warning, the PyTorch loops, the same numbers"
smoke no-compiler -u CXX -u CC PATH="$WORK/venv/bin" RNNKIT_ENGINE_CACHE="$WORK/empty-cache" -- fallback

step "with a broken compiler (CXX=/bin/false): the same"
smoke broken-compiler CXX=/bin/false RNNKIT_ENGINE_CACHE="$WORK/empty-cache-2" -- fallback --layers-only

step "passed"
