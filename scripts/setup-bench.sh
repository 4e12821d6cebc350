#!/usr/bin/env bash
# Installs the peers bench:fs measures XenFS against, only those missing: fio (the load), bindfs (a C FUSE
# passthrough), sshfs with a throwaway OpenSSH server on loopback. Idempotent; run as root.
set -euo pipefail
packages=(fio bindfs sshfs openssh-server openssh-client)
missing=()
for pkg in "${packages[@]}"; do
  status=$(dpkg -s "$pkg" 2>/dev/null || true)
  grep -qx 'Status: install ok installed' <<<"$status" || missing+=("$pkg")
done
[ "${#missing[@]}" -eq 0 ] && exit 0
echo "setup-bench: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# policy-rc.d 101 keeps the package from starting a system-wide sshd: the benchmark runs its own, on loopback.
printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
chmod +x /usr/sbin/policy-rc.d
trap 'rm -f /usr/sbin/policy-rc.d' EXIT
apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
