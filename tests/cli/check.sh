#!/usr/bin/env bash
# wpckpt check: text table, --json keys, --feature exit codes, switched-off probes.
set -u
W=${WPCKPT:?}
fail() { echo "FAIL: $*"; exit 1; }

out=$("$W" check) || fail "check exited $? on a usable kernel"
echo "$out" | grep -qE '^uffd_wp_async +yes' || fail "text table lacks uffd_wp_async yes"
# soft_dirty varies between kernels (absent on the reference machine, present
# on many): the table must agree with --feature, and say what is lost when off.
if "$W" check --feature soft_dirty >/dev/null; then
  echo "$out" | grep -qE '^soft_dirty +yes' || fail "soft_dirty is present but the table does not say yes"
else
  echo "check: this kernel lacks soft_dirty"
  echo "$out" | grep -qE '^soft_dirty +NO +without it:' || fail "text table does not say what is lost without soft_dirty"
fi
"$W" --disable-feature soft_dirty check | grep -qE '^soft_dirty +off +without it:' \
  || fail "a switched-off feature does not say what is lost"

json=$("$W" check --json) || fail "check --json exited $?"
python3 - "$json" <<'PY' || exit 1
import json, sys
d = json.loads(sys.argv[1])
f = d["features"]
assert d["kernel"].startswith("Linux"), d["kernel"]
for k in ("uffd_wp_async", "pagemap_scan", "pagemap_scan_wp_matching"):
    assert f[k] is True, k
assert isinstance(f["soft_dirty"], bool)
assert all(isinstance(v, bool) for v in f.values())
PY

"$W" check --feature uffd_wp_async >/dev/null; [ $? -eq 0 ] || fail "--feature present must exit 0"
"$W" --disable-feature soft_dirty check --feature soft_dirty >/dev/null; [ $? -eq 1 ] || fail "--feature missing must exit 1"
"$W" check --feature no_such_thing >/dev/null 2>&1; [ $? -eq 2 ] || fail "--feature unknown must exit 2"

# Switched off: by hidden option and by environment; check then fails as unusable.
"$W" --disable-feature pagemap_scan check --feature pagemap_scan >/dev/null; [ $? -eq 1 ] || fail "--disable-feature"
WPCKPT_DISABLE_FEATURES=uffd_wp_async "$W" check >/dev/null; [ $? -eq 1 ] || fail "required feature off must exit 1"
off=$(WPCKPT_DISABLE_FEATURES=uffd_wp_async "$W" check --json)
python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert d["features"]["uffd_wp_async"] is False and d["usable"] is False' "$off" \
  || fail "json of a switched-off feature"
# CRIU's `check --feature list`: the names, one per line; --json: a list.
list=$("$W" check --feature list) || fail "check --feature list exited $?"
python3 - "$json" "$list" "$("$W" check --feature list --json)" <<'PY' || fail "check --feature list"
import json, sys
keys = list(json.loads(sys.argv[1])["features"])
lines = sys.argv[2].split("\n")
assert sorted(lines) == sorted(keys), (lines, keys)
assert json.loads(sys.argv[3]) == lines, sys.argv[3]
PY
echo "check: ok"
