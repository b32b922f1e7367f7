#!/usr/bin/env bash
# The verb on the command line is found past wpckpt's own options (only it is
# built, cli/main.cpp): each verb runs after every form of those options, and
# without a verb every one is listed.
set -u
W=${WPCKPT:?}
fail() { echo "FAIL: $*"; exit 1; }

verbs="check run pre-dump dump restore show verify merge cat watch iterate untrack page-server migrate snapshot"
listed=$("$W" --help) || fail "--help exited $?"
for v in $verbs; do
  echo "$listed" | grep -qE "^  $v +" || fail "--help does not list $v"
  "$W" "$v" --help >/dev/null || fail "$v --help exited $?"
done

# wpckpt's own options before the verb, values included: a value that is
# also a verb's name must not be taken for the verb.
for opts in "-v" "-vv" "-q" "-v4" "--verbosity 4" "--verbosity=4" "--disable-feature run" "--disable-feature=run" \
            "-v --disable-feature dump -q"; do
  # shellcheck disable=SC2086
  out=$("$W" $opts check --feature uffd_wp_async 2>&1) || fail "'$opts check' exited $?: $out"
done
# And after it (CLI11 hands them back to wpckpt).
"$W" check --feature uffd_wp_async -q >/dev/null || fail "check ... -q exited $?"

# No verb, or one that does not exist: usage errors, exit 2.
"$W" >/dev/null 2>&1; [ $? -eq 2 ] || fail "no verb must exit 2"
err=$("$W" no-such-verb 2>&1); [ $? -eq 2 ] || fail "an unknown verb must exit 2"
[ -n "$err" ] || fail "an unknown verb must say why"
"$W" -v no-such-verb >/dev/null 2>&1; [ $? -eq 2 ] || fail "an unknown verb after -v must exit 2"
echo "verbs: ok"
