#!/usr/bin/env bash
# What the tests need besides pip packages: Debian's Prometheus, OpenSSL and jq (the pipeline tests edit plans with
# it, as a user would), Chromium (the report test opens the HTML report headless), and, built from the Go module
# proxy and cached outside the checkout, the control plane (tests/sandbox/build.sh) and actionlint
# (tests/tools/actionlint.sh, which checks examples/github-actions.yml). Idempotent: a rerun installs nothing.
set -euo pipefail

DEBIAN_PACKAGES=(prometheus openssl jq chromium)
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
