#!/usr/bin/env bash
# Build KenLM's `lmplz` (estimator) and `build_binary` into VENV/bin, for `steno lm build`.
#
# Source: kenlm's PyPI sdist, which carries the full C++ tree (the same version the Python module
# comes from). Needs cmake, a C++ compiler and Debian's boost program-options/system/thread/test,
# zlib1g, libbz2 and liblzma dev packages (the Makefile's `apt-test` target installs them).
# Idempotent: does nothing when both tools are already there.
# Usage: bash decoders/build_kenlm_tools.sh [VENV]   (default .venv)
set -euo pipefail

VENV=${1:-.venv}
KENLM_VERSION=0.3.0

if [ -x "$VENV/bin/lmplz" ] && [ -x "$VENV/bin/build_binary" ]; then
    exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# --no-build-isolation: only the sdist is wanted; pip must not build cmake from source for metadata.
"$VENV/bin/pip" download -q --no-deps --no-build-isolation --no-binary kenlm \
    "kenlm==$KENLM_VERSION" -d "$work"
tar -xzf "$work/kenlm-$KENLM_VERSION.tar.gz" -C "$work"
cmake -S "$work/kenlm-$KENLM_VERSION" -B "$work/build" -DCMAKE_BUILD_TYPE=Release \
    -DCOMPILE_TESTS=OFF -DENABLE_PYTHON=OFF >"$work/cmake.log" 2>&1 \
    || { cat "$work/cmake.log" >&2; exit 1; }
cmake --build "$work/build" --target lmplz build_binary -j "$(nproc)" >"$work/build.log" 2>&1 \
    || { tail -n 50 "$work/build.log" >&2; exit 1; }
install -m 755 "$work/build/bin/lmplz" "$work/build/bin/build_binary" "$VENV/bin/"
echo "built lmplz and build_binary (kenlm $KENLM_VERSION) into $VENV/bin"
