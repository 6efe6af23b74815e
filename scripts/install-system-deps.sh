#!/usr/bin/env bash
# System packages the node agent needs (Debian/Ubuntu): bubblewrap builds each container's sandbox,
# iproute2 makes pod networks, util-linux gives setpriv/nsenter, nftables carries the services' data path,
# conntrack forgets the connections of a pod that is gone.
# Installed only when missing;
# without root (or without apt) it says what is missing and fails, so nothing is skipped silently.
set -euo pipefail
need=()
command -v bwrap >/dev/null || need+=(bubblewrap)
command -v ip >/dev/null || need+=(iproute2)
command -v setpriv >/dev/null || need+=(util-linux)
command -v nsenter >/dev/null || need+=(util-linux)
command -v nft >/dev/null || need+=(nftables)
command -v conntrack >/dev/null || need+=(conntrack)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "missing system packages: ${need[*]} (install them with your package manager)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
