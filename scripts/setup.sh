#!/usr/bin/env bash
# Set up tfgen on a fresh machine: Debian packages (when root), a virtual env in .venv, tfgen and
# its test dependencies. Safe to run again; it only adds what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# Python itself, when the machine has no usable venv/ensurepip; the Cortex-M cross compiler and QEMU
# that the firmware tests build and run with (they skip, saying so, where these are absent).
python_packages=(python3 python3-venv python3-pip)
toolchain_packages=(g++ gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib qemu-system-arm)

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    wanted=("${toolchain_packages[@]}")
    python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || wanted+=("${python_packages[@]}")
    missing=()
    for p in "${wanted[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "setup: installing Debian packages: ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
else
    echo "setup: not root: skipping Debian packages (${toolchain_packages[*]}); install them to run the Cortex-M tests"
fi

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "setup: tfgen needs Python 3.11 or newer; $python is $("$python" --version 2>&1)." >&2
    echo "setup: set PYTHON=/path/to/python3.11 and run again." >&2
    exit 2
fi
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# tfgen 0.1 depended on tensorflow-cpu; now on tensorflow (same version, same module): one of the two.
if .venv/bin/python -m pip show -q tensorflow-cpu >/dev/null 2>&1; then
    .venv/bin/python -m pip uninstall -q -y tensorflow-cpu
fi
.venv/bin/python -m pip install -q -e ".[test]"
echo "setup: ready: $(.venv/bin/tfgen --version) in $(pwd)/.venv"
