#!/bin/sh
# Pre-dump iterations written the way CRIU's documentation and its users'
# scripts write them; the only change from the CRIU version is the program
# name (`criu` -> `wpckpt`). tests/e2e/criu_script_test.sh runs it.
# Usage: pre-dump-iterations.sh PID PRE_DUMPS PIDFILE   (in the working directory)
set -e
pid=$1
n=$2
pidfile=$3
# One set of options for every step, as scripts for servers pass them (CRIU
# takes any option on any command; a pre-dump or a restore ignores what is
# not its business).
opts="--tcp-established --file-locks --ext-unix-sk"

mkdir -p imgs/1
wpckpt pre-dump -t "$pid" -D imgs/1 --track-mem $opts -v4 -o pre-dump.log
i=1
while [ "$i" -lt "$n" ]; do
	i=$((i + 1))
	mkdir imgs/$i
	wpckpt pre-dump -t "$pid" -D imgs/$i --prev-images-dir ../$((i - 1)) --track-mem $opts -v4 -o pre-dump.log
done
mkdir imgs/$((n + 1))
wpckpt dump -t "$pid" -D imgs/$((n + 1)) --prev-images-dir ../$n --track-mem $opts -v4 -o dump.log --display-stats
wpckpt restore -D imgs/$((n + 1)) -d --pidfile "$pidfile" $opts -v4 -o restore.log --display-stats
