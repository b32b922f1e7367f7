#!/usr/bin/env bash
# The README's first command: what this kernel supports. The checkpoint and
# restore work extends it into a real demo (run, pre-dump, dump, restore).
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
./build/wpckpt check
