# Sourced first by the tests/e2e/*_test.sh that drive Python: strict
# variables, W (the wpckpt binary, from ctest's WPCKPT), a temporary working
# directory removed at exit, SUPPORT (the PYTHONPATH of e2e_support.py), and
# `need PROG...`, which fails the test when a program setup.sh installs is
# missing.
set -u
SUPPORT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
W=${WPCKPT:?}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp" || exit 1

need() {
  for prog in "$@"; do
    if ! command -v "$prog" >/dev/null; then
      echo "FAIL: $prog is not installed (setup.sh installs it)"
      exit 1
    fi
  done
}
