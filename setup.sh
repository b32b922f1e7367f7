#!/usr/bin/env bash
# Installs what wpckpt needs from Debian's archive, and nothing when it is all
# there (idempotent, quiet). Run as root on Debian 12.
set -euo pipefail

packages=(
  build-essential cmake pkg-config clang libclang-rt-14-dev
  libcli11-dev nlohmann-json3-dev libzstd-dev libxxhash-dev libfmt-dev
  libgtest-dev googletest
  libbpf-dev bpftool libelf-dev
  zstd xz-utils python3 coreutils procps
  libcap2-bin passwd util-linux
  zsh fish man-db groff-base
  sqlite3 redis-server memcached
  nftables libnftables-dev iproute2
  libgnutls28-dev
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  sudo_cmd=()
  if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi
