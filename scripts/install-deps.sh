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
  libcpp-httplib-dev chromium
  libminiupnpc-dev libnatpmp-dev miniupnpd-iptables
)
# Node.js and npm for web/ (the dashboard's uPlot, the browser test's
# puppeteer-core): Debian's, unless a node with npm is already there.
command -v npm >/dev/null 2>&1 || PKGS+=(nodejs npm)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PKGS[@]} packages already installed"
elif [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages (${missing[*]}); run this script as root" >&2
  exit 1
else
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# web/'s npm packages, exactly as locked (package-lock.json); again only when
# the lock file changed since the last install.
web=$(cd "$(dirname "$0")/.." && pwd)/web
if ! cmp -s "$web/package-lock.json" "$web/node_modules/.ps-installed-lock" 2>/dev/null; then
  echo "install-deps: npm ci in web/"
  (cd "$web" && npm ci --no-audit --no-fund --loglevel=error)
  cp "$web/package-lock.json" "$web/node_modules/.ps-installed-lock"
fi
