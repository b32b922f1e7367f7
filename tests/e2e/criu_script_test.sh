#!/usr/bin/env bash
# A CRIU-style pre-dump iteration script (tests/e2e/criu_style/) against a
# real workload: zdtm_counter (threads counting under a mutex, a heap pattern)
# is pre-dumped three times with ../N parents in directories made by mkdir,
# dumped, and restored detached with --pidfile, each step given the same
# CRIU options (--tcp-established --file-locks --ext-unix-sk); the pid file
# must name the restored process, which must then pass its own check. Also: the errors a
# CRIU user meets first (a non-empty -D, a parent given relative to the
# working directory, a CRIU option wpckpt does not have) and where
# --log-file puts the log.
# Every process started here is killed by pid when the test ends.
set -u
W=${WPCKPT:?}
WORKLOADS=${WPCKPT_WORKLOAD_DIR:?}
SRC=${WPCKPT_SOURCE_DIR:?}

tmp=$(mktemp -d)
workload=
restored=
cleanup() {
  for p in $workload $restored; do kill -KILL "$p" 2>/dev/null; done
  [ -n "$workload" ] && wait "$workload" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*"
  for f in "$tmp"/run/out.txt "$tmp"/run/imgs/*/*.log "$tmp"/run/script.out; do
    [ -f "$f" ] && { echo "--- $f"; tail -n 20 "$f"; }
  done
  exit 1
}

# `wpckpt` on PATH, as a CRIU user's script expects `criu` to be.
mkdir -p "$tmp/bin" "$tmp/run"
ln -s "$(readlink -f "$W")" "$tmp/bin/wpckpt"
export PATH="$tmp/bin:$PATH"
cd "$tmp/run" || exit 1

wpckpt run -- "$WORKLOADS/zdtm_counter" 2 8 >out.txt 2>&1 </dev/null &
workload=$!
for _ in $(seq 200); do grep -q READY out.txt 2>/dev/null && break; sleep 0.05; done
grep -q "READY $workload" out.txt || fail "zdtm_counter did not start"
start_before=$(awk '{print $22}' "/proc/$workload/stat")  # comm has no spaces: field 22 is the start time

# --- What a CRIU user meets first, before the script: clear errors, nothing touched.
mkdir -p full other/1
echo keep >full/notes
wpckpt pre-dump -t "$workload" -D full --track-mem -o pre-dump.log 2>err.txt
[ $? -eq 1 ] || fail "a non-empty -D must be refused"
grep -q "Directory not empty" err.txt || fail "non-empty -D: unclear error: $(cat err.txt)"
grep -q "hint:" err.txt || fail "non-empty -D: no hint"
[ "$(cat full/notes)" = keep ] || fail "the non-empty -D was changed"
grep -q "Directory not empty" full/pre-dump.log || fail "--log-file did not receive the error (full/pre-dump.log)"
mkdir imgs0
wpckpt pre-dump -t "$workload" -D imgs0/2 --prev-images-dir other/1 2>err.txt
[ $? -eq 1 ] || fail "a parent relative to the working directory must be refused"
grep -q "exists relative to the working directory" err.txt || fail "relative parent: unclear error: $(cat err.txt)"
grep -q -- "--prev-images-dir ../../other/1" err.txt || fail "relative parent: the hint does not give the path relative to -D: $(cat err.txt)"
[ ! -e imgs0/2 ] || fail "a refused pre-dump left imgs0/2"

# A CRIU option wpckpt does not have: a usage error, with what to do instead, nothing touched.
wpckpt pre-dump -t "$workload" -D dedup --auto-dedup 2>err.txt
[ $? -eq 2 ] || fail "an unknown CRIU option must be a usage error (exit 2)"
grep -q "hint: --auto-dedup (CRIU's): .*wpckpt merge" err.txt || fail "--auto-dedup: no hint: $(cat err.txt)"
wpckpt dump -t "$workload" -D lazy --lazy-pages --manage-cgroups=soft 2>err.txt
[ $? -eq 2 ] || fail "dump --lazy-pages must be a usage error (exit 2)"
grep -q "hint: --lazy-pages (CRIU's): .*page-server --lazy" err.txt || fail "--lazy-pages: no hint: $(cat err.txt)"
grep -q "hint: --manage-cgroups (CRIU's): cgroups are not checkpointed" err.txt \
  || fail "--manage-cgroups=soft: no hint: $(cat err.txt)"
[ ! -e dedup ] && [ ! -e lazy ] || fail "a refused command line created its -D"
kill -0 "$workload" || fail "a refused command line harmed the workload"

# --- The script itself.
# The workload is our child: the dump kills it, and we must reap it at once
# so that its pid is free for the restore the script runs right after.
sh "$SRC/tests/e2e/criu_style/pre-dump-iterations.sh" "$workload" 3 "$tmp/run/restored.pid" >script.out 2>&1 &
script=$!
wait -n -p first "$workload" "$script"
script_rc=$?
dumped=$workload
if [ "$first" = "$workload" ]; then
  workload=  # reaped: its pid is no longer ours unless the restore gives it back
  wait "$script"
  script_rc=$?
fi
[ "$script_rc" -eq 0 ] || fail "the CRIU-style script failed (exit $script_rc)"
[ -s restored.pid ] || fail "no pid file"
restored=$(cat restored.pid)
[[ "$restored" =~ ^[0-9]+$ ]] || fail "pid file holds '$restored'"

# The chain: each image where the script made its directory, linked by ../N, each with its log.
for i in 1 2 3 4; do
  [ -f imgs/$i/manifest.json ] || fail "imgs/$i is not an image"
  [ "$(stat -c %a imgs/$i)" = 700 ] || fail "imgs/$i has mode $(stat -c %a imgs/$i), not 0700"
done
for i in 2 3 4; do
  python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); assert m["parent"]["path"] == sys.argv[2], m["parent"]' \
    imgs/$i/manifest.json "../$((i - 1))" || fail "imgs/$i does not name ../$((i - 1)) as its parent"
done
wpckpt verify -D imgs/4 >/dev/null || fail "the chain does not verify"
for f in imgs/1/pre-dump.log imgs/2/pre-dump.log imgs/3/pre-dump.log imgs/4/dump.log imgs/4/restore.log; do
  [ -f "$f" ] || fail "no log $f"
done
grep -q "wpckpt: debug: dump of $dumped" imgs/4/dump.log || fail "-v4 -o dump.log: no debug message in the log"
ls -a imgs | grep -q '\.log-' && fail "a hidden log file was left beside the images"
grep -q "^Displaying dump stats:" script.out || fail "--display-stats printed nothing for dump"
grep -qE "^Memory pages written: [0-9]+ \(0x[0-9a-f]+\)" script.out || fail "--display-stats: no pages written line"
grep -q "^Displaying restore stats:" script.out || fail "--display-stats printed nothing for restore"

# The pid file names the restored process: the same pid (clone3 set_tid), the
# workload's executable, started after the original, no longer traced.
[ "$restored" = "$dumped" ] || fail "pid file says $restored, the dumped process was $dumped"
for _ in $(seq 200); do
  grep -q "TracerPid:	0" "/proc/$restored/status" 2>/dev/null && break
  sleep 0.05
done
[ "$(readlink "/proc/$restored/exe")" = "$(readlink -f "$WORKLOADS/zdtm_counter")" ] \
  || fail "pid $restored runs $(readlink "/proc/$restored/exe")"
start_after=$(awk '{print $22}' "/proc/$restored/stat")
[ "$start_after" -gt "$start_before" ] || fail "pid $restored was not started by the restore"

# The restored workload checks itself: SIGUSR1, then PASS or FAIL on its stdout.
kill -USR1 "$restored"
for _ in $(seq 400); do grep -qE "^(PASS|FAIL)" out.txt && break; sleep 0.05; done
grep -q "^PASS" out.txt || fail "the restored workload did not pass its own check"
for _ in $(seq 200); do [ -e "/proc/$restored" ] || break; sleep 0.05; done
[ -e "/proc/$restored" ] && [ "$(awk '{print $3}' "/proc/$restored/stat")" != Z ] && fail "the restored workload did not exit"
restored=
echo "criu_script: ok"
