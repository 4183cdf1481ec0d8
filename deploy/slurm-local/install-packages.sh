#!/usr/bin/env bash
# Install the Debian packages of the one-node test SLURM (slurm-wlm, munge),
# non-interactively; does nothing when they are already installed.
# Called by .ci/run before the tests; start-slurm.sh then starts the daemons.
set -euo pipefail

PACKAGES=(slurm-wlm munge)
missing=()
for pkg in "${PACKAGES[@]}"; do
    if [[ $(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null) != "install ok installed" ]]; then
        missing+=("$pkg")
    fi
done
if ((${#missing[@]} == 0)); then
    echo "install-packages: ${PACKAGES[*]} already installed"
    exit 0
fi

SUDO=()
if [[ $(id -u) != 0 ]]; then
    command -v sudo >/dev/null 2>&1 || {
        echo "install-packages: error: need root (or sudo) to install ${missing[*]}" >&2
        exit 1
    }
    SUDO=(sudo -n)
fi
echo "install-packages: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -q
# keep any existing configuration files; never ask
"${SUDO[@]}" apt-get install -y -q --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}"
