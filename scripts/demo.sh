#!/usr/bin/env bash
# The README's first command: a counter started with `wpckpt run`, three
# pre-dumps while it runs, a dump (which stops it), `wpckpt show`, a restore,
# and proof that it continued: same pid, and its output file holds 1..N with
# no number missing or repeated across the checkpoint.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
w=./build/wpckpt
$w check || true

work=$(mktemp -d)
pid=
cleanup() {
  [[ -n "$pid" ]] && kill -9 "$pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

$w run -- python3 -u -c '
import time
i = 0
while True:
    i += 1
    print(i)
    time.sleep(0.05)' >"$work/out" &
pid=$!
sleep 1
prev=()
for i in 1 2 3; do
  $w pre-dump -t "$pid" -D "$work/pre$i" "${prev[@]}"
  prev=(--prev-images-dir "$work/pre$i")
  sleep 0.5
done
$w dump -t "$pid" -D "$work/dump" "${prev[@]}"
wait "$pid" 2>/dev/null || true
before=$(tail -n 1 "$work/out")
echo "--- dumped at $before; the process is gone: $(test -e /proc/$pid && echo no || echo yes)"
$w show -D "$work/dump" | awk 'NR <= 6 || /^(pages|bytes):/'
restored=$($w restore -D "$work/dump" --restore-detached)
echo "--- restored pid $restored (was $pid)"
sleep 1
after=$(tail -n 1 "$work/out")
kill -9 "$restored"
echo "--- it continued: $before before the dump, $after one second after the restore"
if [[ "$restored" == "$pid" ]] && diff -q <(seq 1 "$after") <(head -n "$after" "$work/out") >/dev/null && ((after > before)); then
  echo "--- PASS: same pid, output 1..$after without a gap or a repeat"
else
  echo "--- FAIL"; exit 1
fi
