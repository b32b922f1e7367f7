#!/usr/bin/env bash
# Fails when a file includes from a folder it may not depend on (ARCHITECTURE.md).
set -u
cd "${WPCKPT_SOURCE_DIR:?}"
bad=0
# forbid DIR REGEX: no file under DIR may include a path matching REGEX.
forbid() {
  local hits
  hits=$(grep -rnE "#include \"($2)" --include='*.cpp' --include='*.hpp' --include='*.h' --include='*.c' "$1")
  if [ -n "$hits" ]; then
    echo "$hits"
    echo "architecture: $1 must not include $2"
    bad=1
  fi
}
forbid dump-format 'tracker/|cli/'
forbid tracker 'dump-format/|cli/'
forbid lib 'cli/'
# Inside lib/: the image model (state) and the descriptor kinds (fds) serve
# both dump and restore, so they know neither.
forbid lib/state 'lib/(dump|restore|checkpoint|iterate|ptrace|probe|agent|fds)/'
forbid lib/fds 'lib/(dump|restore|checkpoint|iterate|ptrace|probe|agent)/'
forbid lib/netlock 'lib/(state|fds|dump|restore|checkpoint|iterate|ptrace|probe|agent|attach)/'
forbid lib/net/ 'lib/(state|fds|dump|restore|checkpoint|iterate|ptrace|probe|agent|attach|netlock)/|tracker/'
# tracker and dump-format take only lib/base from lib/; lib/base takes nothing of ours.
for dir in dump-format tracker; do
  hits=$(grep -rnE '#include "lib/' "$dir" | grep -v '#include "lib/base/')
  if [ -n "$hits" ]; then echo "$hits"; echo "architecture: $dir may include only lib/base from lib/"; bad=1; fi
done
hits=$(grep -rnE '#include "(lib/|tracker/|dump-format/|cli/)' lib/base | grep -v '#include "lib/base/')
if [ -n "$hits" ]; then echo "$hits"; echo "architecture: lib/base must not include other folders"; bad=1; fi
[ $bad -eq 0 ] && echo "architecture: ok"
exit $bad
