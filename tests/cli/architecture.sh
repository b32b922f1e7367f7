#!/usr/bin/env bash
# Fails when a file includes from a folder it may not depend on (ARCHITECTURE.md).
set -u
cd "${WPCKPT_SOURCE_DIR:?}"
bad=0
check() {  # folder, forbidden include prefixes...
  local dir=$1; shift
  for prefix in "$@"; do
    if grep -rnE "#include \"${prefix}" --include='*.cpp' --include='*.hpp' --include='*.h' --include='*.c' "$dir" \
        | grep -v "^${dir}/base/" ; then
      echo "architecture: $dir must not include $prefix"
      bad=1
    fi
  done
}
check dump-format 'lib/(probe|agent|[a-z_]+/)' 'tracker/' 'cli/'
check tracker 'dump-format/' 'cli/'
check lib 'cli/'
# tracker and dump-format may use lib/base only.
for dir in dump-format tracker; do
  if grep -rnE '#include "lib/' "$dir" | grep -v '#include "lib/base/'; then
    echo "architecture: $dir may include only lib/base from lib/"
    bad=1
  fi
done
if grep -rnE '#include "(lib/[a-z_]+/|tracker/|dump-format/|cli/)' lib/base | grep -v '#include "lib/base/'; then
  echo "architecture: lib/base must not include other folders"
  bad=1
fi
[ $bad -eq 0 ] && echo "architecture: ok"
exit $bad
