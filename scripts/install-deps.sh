#!/usr/bin/env bash
# Installs everything patchswarm needs to build, test and run its demo on a
# Debian bookworm machine. Run as root. Skips packages that are already there.
set -euo pipefail

PKGS=(
  build-essential cmake pkg-config git python3
  libuv1-dev libsodium-dev libmsgpack-cxx-dev libopendht-dev doctest-dev
  libcli11-dev nlohmann-json3-dev libtomlplusplus-dev libfmt-dev libspdlog-dev
  clang libclang-rt-dev
  help2man debootstrap
  iproute2 procps gnuplot-nox
  libnetfilter-queue-dev libmnl-dev iptables nginx-light curl
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PKGS[@]} packages already installed"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages (${missing[*]}); run this script as root" >&2
  exit 1
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
