#!/usr/bin/env bash
# Builds and runs every test: a sanitizer build (clang, ASan+UBSan) of the unit
# tests and the bounded fuzz runs, then the main build (-Werror) with every
# unit, CLI and end-to-end test. The main ctest run comes last so its closing
# line is the summary CI reads. Exit code: non-zero if any part failed.
set -uo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
status=0

echo "== sanitizer build: unit tests (ASan+UBSan) and fuzz targets =="
if CC=clang CXX=clang++ cmake -S . -B build-sanitize -DCMAKE_BUILD_TYPE=Debug -DWPCKPT_WERROR=ON \
     -DWPCKPT_SANITIZE=ON -DWPCKPT_FUZZ=ON -DWPCKPT_BENCH=OFF >build-sanitize.log 2>&1 &&
   cmake --build build-sanitize -j"$jobs" >>build-sanitize.log 2>&1; then
  (cd build-sanitize && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
     ctest --output-on-failure -L 'unit|fuzz' -j"$jobs") || status=1
else
  tail -50 build-sanitize.log
  echo "sanitizer build failed (log: build-sanitize.log)"
  status=1
fi

echo "== main build (-Werror): every test =="
if cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWPCKPT_WERROR=ON >build.log 2>&1 &&
   cmake --build build -j"$jobs" >>build.log 2>&1; then
  (cd build && ctest --output-on-failure -j"$jobs") || status=1
else
  tail -50 build.log
  echo "main build failed (log: build.log)"
  status=1
fi
exit $status
