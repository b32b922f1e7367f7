#!/usr/bin/env bash
# `cmake --install` puts the binary, the agent, man pages and completions where
# wpckpt, the shells and man(1) find them (README "Install").
set -u
B=${WPCKPT_BUILD_DIR:?WPCKPT_BUILD_DIR must name the build tree}
fail() { echo "FAIL: $*"; exit 1; }
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT

cmake --install "$B" --prefix "$prefix" >"$prefix.log" 2>&1 || { cat "$prefix.log"; rm -f "$prefix.log"; fail "cmake --install exited non-zero"; }
rm -f "$prefix.log"
"$prefix/bin/wpckpt" --version | grep -q '^wpckpt ' || fail "installed bin/wpckpt does not print its version"
for page in wpckpt wpckpt-check wpckpt-run wpckpt-pre-dump wpckpt-dump wpckpt-restore wpckpt-show wpckpt-verify \
            wpckpt-merge wpckpt-cat; do
  [ -f "$prefix/share/man/man1/$page.1" ] || fail "share/man/man1/$page.1 not installed"
done
[ -f "$prefix/share/man/man5/wpckpt-image.5" ] || fail "share/man/man5/wpckpt-image.5 not installed"
if command -v man >/dev/null; then
  found=$(man -M "$prefix/share/man" -w wpckpt-dump 2>/dev/null)
  [ "$found" = "$prefix/share/man/man1/wpckpt-dump.1" ] || fail "man -M PREFIX/share/man does not find wpckpt-dump (got '$found')"
fi
[ -f "$prefix/share/bash-completion/completions/wpckpt" ] || fail "bash completion not installed"
[ -f "$prefix/share/zsh/site-functions/_wpckpt" ] || fail "zsh completion not installed"
[ -f "$prefix/share/fish/vendor_completions.d/wpckpt.fish" ] || fail "fish completion not installed"
# The installed binary finds the installed agent (bin/../lib) and starts a command with it.
if [ -f "$B/libwpckpt-agent.so" ]; then
  [ -f "$prefix/lib/libwpckpt-agent.so" ] || fail "lib/libwpckpt-agent.so not installed"
  env -u WPCKPT_AGENT_LIBRARY "$prefix/bin/wpckpt" run -- true || fail "installed 'wpckpt run -- true' exited $?"
fi
# bash-completion loads share/bash-completion/completions/<command> on first use.
out=$(bash --norc --noprofile -c "source '$prefix/share/bash-completion/completions/wpckpt'
  COMP_WORDS=(wpckpt pre-d); COMP_CWORD=1; _wpckpt; echo \"\${COMPREPLY[*]}\"")
[ "$out" = "pre-dump" ] || fail "installed bash completion completes 'pre-d' to '$out'"
echo "install: ok"
