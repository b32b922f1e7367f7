#!/usr/bin/env bash
# Man pages and shell completions against the CLI definition (`wpckpt __cli-spec`):
# every verb and option must be documented in man/ and completed by bash, zsh and
# fish, and nothing there may name an option the CLI does not have. bash and fish
# completions are exercised for real (the shells are asked what they complete);
# the zsh file is read. Syntax: bash -n, zsh -n, fish --no-execute, and the man
# pages must format without a warning.
# After adding an option: scripts/gen-completions.py build/wpckpt, and document it
# in man/wpckpt-VERB.1.
set -u
W=${WPCKPT:?WPCKPT must name the wpckpt binary}
SRC=${WPCKPT_SOURCE_DIR:?WPCKPT_SOURCE_DIR must name the source tree}

tmp=$(mktemp -d)
sleeper=
cleanup() {
  if [ -n "$sleeper" ]; then kill "$sleeper" 2>/dev/null; wait "$sleeper" 2>/dev/null; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# `command wpckpt` in the completions must find the binary under test.
mkdir -p "$tmp/bin" "$tmp/dirs/img1" "$tmp/xdg"
ln -s "$(readlink -f "$W")" "$tmp/bin/wpckpt"
touch "$tmp/dirs/notadir"
# A process of our own whose pid the pid completion must offer.
sleep 300 &
sleeper=$!

"$W" __cli-spec >"$tmp/spec.json" || { echo "FAIL: wpckpt __cli-spec exited $?"; exit 1; }
"$W" check --json >"$tmp/check.json"  # exit 1 only means "not usable"; the keys are there

PATH="$tmp/bin:$PATH" XDG_CONFIG_HOME="$tmp/xdg" XDG_DATA_HOME="$tmp/xdg" XDG_CACHE_HOME="$tmp/xdg" \
  python3 - "$SRC" "$tmp" "$sleeper" <<'PY'
import json, os, re, shlex, shutil, subprocess, sys

src, tmp, sleeper = sys.argv[1], sys.argv[2], sys.argv[3]
spec = json.load(open(os.path.join(tmp, "spec.json")))
features = set(json.load(open(os.path.join(tmp, "check.json")))["features"])
verbs = spec["verbs"]
problems = []


def names(opts):
    return {n for o in opts for n in ["-" + s for s in o["short"]] + ["--" + l for l in o["long"]]}


glob_names = names(spec["global_options"])
verb_names = {v: names(info["options"]) for v, info in verbs.items()}
all_names = glob_names.union(*verb_names.values())
# CRIU options refused with a hint (cli/criu_compat.cpp): prose may name them.
criu_refused = set(spec.get("criu_options_refused", []))
TOKEN = re.compile(r"(?<![\w\\-])(--?[A-Za-z][\w-]*)")


def compare(where, want, got):
    for n in sorted(want - got):
        problems.append(f"{where}: missing {n}")
    for n in sorted(got - want):
        problems.append(f"{where}: names {n}, which the CLI does not have (stale)")


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


# ------------------------------------------------------------------ syntax
comp = os.path.join(src, "completions")
bash_file, zsh_file, fish_file = (os.path.join(comp, f) for f in ("wpckpt.bash", "_wpckpt", "wpckpt.fish"))
for f in (bash_file, zsh_file, fish_file):
    if not os.path.isfile(f):
        problems.append(f"{f}: missing")
if problems:
    print("\n".join("FAIL: " + p for p in problems))
    sys.exit(1)
r = run(["bash", "-n", bash_file])
if r.returncode:
    problems.append(f"bash -n {bash_file}: {r.stderr.strip()}")
for shell, cmd in (("zsh", ["zsh", "-n", zsh_file]), ("fish", ["fish", "--no-execute", fish_file])):
    if shutil.which(shell) is None:
        print(f"docs_drift: {shell} is not installed; skipping its syntax check (setup.sh installs it)")
        continue
    r = run(cmd)
    if r.returncode or r.stderr.strip():
        problems.append(f"{' '.join(cmd)}: {r.stderr.strip() or 'exit ' + str(r.returncode)}")

man_dir = os.path.join(src, "man")
pages = sorted(f for f in os.listdir(man_dir) if re.fullmatch(r"wpckpt(-[\w-]+)?\.[15]", f))
env = dict(os.environ, LC_ALL="C.UTF-8", MANWIDTH="80")
for page in pages:
    path = os.path.join(man_dir, page)
    checks = [["groff", "-man", "-ww", "-z", path]]
    if shutil.which("man"):
        checks.append(["man", "--warnings", "-E", "UTF-8", "-l", path])
    for cmd in checks:
        r = run(cmd, env=env)
        if r.returncode or r.stderr.strip():
            problems.append(f"man/{page}: {cmd[0]} warns: {r.stderr.strip()[:500]}")

# ------------------------------------------------------------------ man pages
def roff_text(path):
    text = open(path).read()
    text = text.replace("\\-", "-")
    return re.sub(r"\\f(\[[^\]]*\]|\(..|.)", "", text)


def section(text, title):
    m = re.search(r"^\.SH\s+\"?" + title + r"\"?\s*$(.*?)(?=^\.SH|\Z)", text, re.M | re.S)
    return m.group(1) if m else None


def option_tags(options_section):
    """Option names in the tags of .TP items: the line after each .TP."""
    tags = set()
    lines = options_section.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(".TP") and i + 1 < len(lines):
            tags |= set(TOKEN.findall(lines[i + 1]))
    return tags


def check_page(page, want, verbs_to_mention=()):
    path = os.path.join(man_dir, page)
    if not os.path.isfile(path):
        problems.append(f"man/{page}: missing ({page.split('.')[0]} must document {' '.join(sorted(want)) or 'the verb'})")
        return
    text = roff_text(path)
    opts = section(text, "OPTIONS")
    if opts is None:
        problems.append(f"man/{page}: no OPTIONS section")
    else:
        compare(f"man/{page} OPTIONS", want, option_tags(opts))
    # Long options anywhere; short ones in the SYNOPSIS (prose and examples
    # may hold other commands' flags, such as test's -lt).
    for n in sorted({t for t in TOKEN.findall(text) if t.startswith("--")} - all_names - criu_refused):
        problems.append(f"man/{page}: mentions {n}, which no verb has (stale)")
    synopsis = section(text, "SYNOPSIS") or ""
    for n in sorted(set(TOKEN.findall(synopsis)) - want - glob_names):
        problems.append(f"man/{page} SYNOPSIS: names {n}, which the CLI does not have here (stale)")
    for v in verbs_to_mention:
        if not re.search(r"^\.B\s+" + re.escape(v) + r"\s*$", text, re.M):
            problems.append(f"man/{page}: verb {v} is not listed")
        if f"wpckpt-{v} (1)" not in text.replace(".BR ", ""):
            problems.append(f"man/{page}: no reference to wpckpt-{v}(1)")


check_page("wpckpt.1", glob_names, verbs)
for v in verbs:
    check_page(f"wpckpt-{v}.1", verb_names[v])
for page in pages:
    m = re.fullmatch(r"wpckpt-([\w-]+)\.1", page)
    if m and m.group(1) not in verbs:
        problems.append(f"man/{page}: documents a verb the CLI does not have (stale)")
if "wpckpt-image.5" not in pages:
    problems.append("man/wpckpt-image.5: missing")

# ------------------------------------------------------------------ bash
# Ask bash what it completes: each query is a command line whose last word is
# being completed.
dirs = os.path.join(tmp, "dirs") + "/"
queries = [["wpckpt", ""], ["wpckpt", "-"]] + [["wpckpt", v, "-"] for v in verbs]
value_queries = []  # (verb, option, kind, words)
for v, info in verbs.items():
    for o in info["options"]:
        long = (o["long"] or [""])[0]
        kind = {"tree": "pid", "images-dir": "dir", "prev-images-dir": "dir", "output": "dir",
                "feature": "feature"}.get(long)
        if kind:
            for n in names([o]):
                value_queries.append((v, n, kind, ["wpckpt", v, n, dirs if kind == "dir" else ""]))
queries += [q[3] for q in value_queries]


def check_value(label, v, n, kind, got):
    where = f"{label}: wpckpt {v} {n}"
    if kind == "feature":
        compare(where + " (feature names from `wpckpt check --json`)", features, set(got))
    elif kind == "pid":
        if sleeper not in got:
            problems.append(f"{where}: does not offer the pid {sleeper} of a running process")
    elif kind == "dir":
        got = {g.rstrip("/") for g in got}
        if dirs + "img1" not in got:
            problems.append(f"{where}: does not offer the directory {dirs}img1")
        if dirs + "notadir" in got:
            problems.append(f"{where}: offers the file {dirs}notadir where a directory is wanted")


script = [f"source {shlex.quote(bash_file)}"]
for q in queries:
    words = " ".join(shlex.quote(w) for w in q)
    script.append(f"COMP_WORDS=({words}); COMP_CWORD={len(q) - 1}; COMPREPLY=(); _wpckpt; "
                  "echo '@@@'; printf '%s\\n' \"${COMPREPLY[@]}\"")
r = run(["bash", "--norc", "--noprofile", "-c", "\n".join(script)])


def check_answers(label, r, answers, values=True):
    """answers[i]: what the shell completed for queries[i]."""
    if r.returncode or len(answers) != len(queries):
        problems.append(f"{label}: running the completion failed: {r.stderr.strip()[:500]}")
        return
    compare(f"{label}: verbs", set(verbs), set(answers[0]))
    compare(f"{label}: global options", glob_names, set(answers[1]))
    for i, v in enumerate(verbs):
        if v in answers[0]:  # a missing verb is reported once, above
            compare(f"{label}: wpckpt {v}", verb_names[v], set(answers[2 + i]))
    if values:
        for (v, n, kind, _), got in zip(value_queries, answers[2 + len(verbs):]):
            check_value(label, v, n, kind, got)


check_answers("completions/wpckpt.bash", r,
              [a.strip("\n").split("\n") if a.strip("\n") else [] for a in r.stdout.split("@@@\n")[1:]])

# ------------------------------------------------------------------ fish
if shutil.which("fish") is None:
    print("docs_drift: fish is not installed; reading completions/wpckpt.fish instead of running it")
    lines = open(fish_file).read().splitlines()
    top = [l for l in lines if "'not __fish_seen_subcommand_from" in l]

    def fish_opts(ls):
        return [("-" if k == "s" else "--") + n for l in ls for k, n in re.findall(r" -([sl]) ([\w-]+)", l)]

    answers = [re.findall(r" -a ([\w-]+) -d", "\n".join(top)), fish_opts([l for l in top if " -a " not in l])]
    answers += [fish_opts([l for l in lines if f"'__fish_seen_subcommand_from {v}'" in l]) for v in verbs]
    answers += [[] for _ in value_queries]
    check_answers("completions/wpckpt.fish", subprocess.CompletedProcess([], 0, "", ""), answers, values=False)
else:
    script = [f"source {shlex.quote(fish_file)}"]
    for q in queries:
        script.append(f"echo '@@@'; complete -C {shlex.quote(' '.join(q))}")
    r = run(["fish", "--no-config", "-c", "\n".join(script)])
    check_answers("completions/wpckpt.fish", r,
                  [[l.split("\t")[0] for l in a.strip("\n").split("\n") if l] for a in r.stdout.split("@@@\n")[1:]])

# ------------------------------------------------------------------ zsh (read)
zsh = open(zsh_file).read()


def zsh_tokens(block):
    block = re.sub(r"^[\s\\]*(-[A-Za-z]\b[\s\\]*)*", "", block)  # _arguments' own flags (-s)
    block = re.sub(r"\[(\\.|[^\]\\])*\]", "", block)  # descriptions
    block = re.sub(r":[^:']*:[^']*'", "'", block)      # value messages and actions
    return set(TOKEN.findall(block))


m = re.search(r"verbs=\((.*?)\n\s*\)", zsh, re.S)
zsh_verbs = set(re.findall(r"^\s*'([\w-]+):", m.group(1), re.M)) if m else set()
compare("completions/_wpckpt: verbs", set(verbs), zsh_verbs)
m = re.search(r"_arguments -C(.*?)'1:verb", zsh, re.S)
compare("completions/_wpckpt: global options", glob_names, zsh_tokens(m.group(1)) if m else set())
blocks = dict(re.findall(r"^\s*\(([\w-]+)\)\n\s*_arguments(.*?)^\s*;;", zsh, re.M | re.S))
for v in verbs:
    if v not in blocks:
        problems.append(f"completions/_wpckpt: no block for verb {v}")
        continue
    compare(f"completions/_wpckpt: wpckpt {v}", verb_names[v], zsh_tokens(blocks[v]))
    for line in blocks[v].splitlines():
        for long, action in (("--tree", "_pids"), ("--images-dir", "_directories"),
                             ("--prev-images-dir", "_directories"), ("--output", "_directories"),
                             ("--feature", "_wpckpt_features")):
            if re.search(re.escape(long) + r"=?[\]'}]", line) and action not in line:
                problems.append(f"completions/_wpckpt: wpckpt {v} {long} does not complete with {action}")
for v in set(blocks) - set(verbs):
    problems.append(f"completions/_wpckpt: block for verb {v}, which the CLI does not have (stale)")

if problems:
    print("\n".join("FAIL: " + p for p in problems))
    print("fix: scripts/gen-completions.py PATH/TO/wpckpt, and document options in man/wpckpt-VERB.1")
    sys.exit(1)
print(f"docs_drift: ok ({len(verbs)} verbs, {len(all_names)} option names, {len(pages)} man pages)")
PY
