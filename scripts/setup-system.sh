#!/usr/bin/env bash
# Installs the Debian packages XenFS's build and test suite need, only those missing. Idempotent: a second
# run installs nothing and does not touch the network. Run as root (CI does); non-interactive.
#
#   build-essential python3   node-gyp builds the native addon
#   fuse3 libfuse2 libfuse-dev  fusermount3 and /dev/fuse tooling; libfuse2 + headers for fuse-native.
#                               Never Debian's `fuse` (FUSE 2 tools): it conflicts with fuse3.
#   util-linux procps iproute2  unshare/nsenter/mount, ps for test cleanup, ip for network namespaces
#   strace                      the hello test checks each refused descriptor is closed exactly once
#   attr                        getfattr/setfattr: the POSIX suite checks xattrs through guest mounts
#   redis-server                the queues under the change events (BullMQ); xenfs up and the tests start private ones
set -euo pipefail

packages=(build-essential python3 fuse3 libfuse2 libfuse-dev util-linux procps iproute2 strace attr redis-server)

missing=()
for pkg in "${packages[@]}"; do
  # Captured first: with pipefail, `dpkg -s | grep -q` can fail on SIGPIPE when grep stops reading early.
  status=$(dpkg -s "$pkg" 2>/dev/null || true)
  if ! grep -qx 'Status: install ok installed' <<<"$status"; then
    missing+=("$pkg")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "setup-system: all packages present (${packages[*]})"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "setup-system: missing ${missing[*]}; run this script as root to install them" >&2
  exit 1
fi

echo "setup-system: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
echo "setup-system: installed ${missing[*]}"
