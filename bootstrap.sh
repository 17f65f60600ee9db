#!/usr/bin/env bash
# Set up iftrain from a checkout: install the Debian packages it needs (when
# missing and when we may), generate the build system, configure and build.
#   ./bootstrap.sh [--no-deps] [--no-build] [CONFIGURE-ARGS...]
#   --no-deps   do not touch system packages (clusters: load modules instead
#               and pass --with-mpi/--with-blis/--with-scalapack/--with-hdf5)
#   --no-build  stop after configure
# Idempotent: run it again at any time.
set -euo pipefail
cd "$(dirname "$0")"

deps=1 build=1
args=()
for a in "$@"; do
  case "$a" in
    --no-deps) deps=0 ;;
    --no-build) build=0 ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) args+=("$a") ;;
  esac
done

# Build and test dependencies (Debian 12 package names; README.md "Requirements").
PKGS=(build-essential autoconf automake pkg-config
      libopenmpi-dev openmpi-bin libblis-openmp-dev libscalapack-openmpi-dev
      libhdf5-openmpi-dev hdf5-tools libcunit1-dev libjansson-dev libssl-dev libpcre2-dev libutf8proc-dev python3 util-linux
      libinih-dev)

if [ "$deps" = 1 ]; then
  missing=()
  for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "bootstrap: installing ${missing[*]}"
    if [ "$(id -u)" != 0 ]; then
      if command -v sudo >/dev/null; then SUDO=sudo; else
        echo "bootstrap: need root to install: ${missing[*]}" >&2
        echo "  hint: run as root, install them yourself, or use --no-deps with your site's modules" >&2
        exit 1
      fi
    else SUDO=; fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
fi

autoreconf -fi
if [ ! -f Makefile ] || [ "${#args[@]}" -gt 0 ] || [ configure -nt config.status ]; then
  ./configure "${args[@]}"
fi
if [ "$build" = 1 ]; then
  make -j"$(nproc)"
fi
