#!/usr/bin/env bash
# Install prober the way users do, and use it the way the README says, far from the
# checkout: build the sdist and from it the wheel (python -m build), install the wheel
# into a fresh venv outside the checkout, and from an empty directory with an empty HOME
# (no user profiles, no cache, no $PROBER_PROFILES, no PYTHONPATH) run the demo endpoint
# and, against it, probe (default set, a browser profile), policy, whatif (default
# clients), check (the packaged example) and the demo itself.
#
# It fails when the installed package lacks any file git tracks under prober/ or
# profiles/, when the installed tool does not see exactly the checkout's profiles, and
# when any command fails. Run by `make test` before the test suite.
#
#   .ci/user_install.sh                 # build from this checkout, then install and run
#   .ci/user_install.sh --wheel FILE    # install and run a given wheel (no build)
#   PY=python3.11 .ci/user_install.sh   # the interpreter that builds (needs `build`)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$PWD
PY=${PY:-.venv/bin/python}
WHATIF_POLICY=ELBSecurityPolicy-TLS13-1-2-2021-06

wheel=""
if [ "${1:-}" = "--wheel" ]; then
    wheel=$(realpath "${2:?--wheel needs a file}")
fi

say() { printf 'user-install: %s\n' "$*"; }
trap 'say "FAILED (line $LINENO): $BASH_COMMAND" >&2' ERR

work=$(mktemp -d /tmp/prober-user-install.XXXXXX)
server=""
cleanup() {
    if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

if [ -z "$wheel" ]; then
    "$PY" -c 'import build' 2>/dev/null || {
        say "$PY has no 'build' module (pip install build; make setup installs it)" >&2; exit 1; }
    say "building sdist and, from the sdist, the wheel"
    if ! "$PY" -m build --outdir "$work/dist" . >"$work/build.log" 2>&1; then
        tail -30 "$work/build.log" >&2; exit 1
    fi
    wheel=$(ls "$work"/dist/*.whl)
fi
say "installing $(basename "$wheel") into a fresh venv in $work/venv"
base=$("$PY" -c 'import sys; print(sys._base_executable)')
"$base" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q --disable-pip-version-check "$wheel"

# From here on: the environment of a user who has just installed it.
mkdir -p "$work/home" "$work/run"
cd "$work/run"
unset PYTHONPATH PROBER_PROFILES XDG_CONFIG_HOME XDG_CACHE_HOME VIRTUAL_ENV
export HOME="$work/home" PATH="$work/venv/bin:$PATH"
run() { printf '\n$ %s\n' "$*"; "$@"; }

# Every file git tracks under prober/ and profiles/ is in the installed package
# (profiles/ as prober/_profiles/): a data file left out of the wheel fails here by name.
site=$("$work/venv/bin/python" -c 'import pathlib, prober; print(pathlib.Path(prober.__file__).parent)')
case "$site" in "$REPO"/*) say "prober was imported from the checkout ($site)" >&2; exit 1;; esac
tracked() {  # the files of prober/ and profiles/ that make up the package
    if git -C "$REPO" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        git -C "$REPO" ls-files -- prober profiles
    else  # a source tarball: everything but what git would ignore
        (cd "$REPO" && find prober profiles -type f ! -path '*/__pycache__/*' \
            ! -name '*.pyc' ! -path 'profiles/imported/*' ! -path 'prober/_version.py')
    fi
}
missing=$(tracked | while read -r f; do
    case "$f" in profiles/*) dest="$site/_profiles/${f#profiles/}";; *) dest="$site/${f#prober/}";; esac
    [ -f "$dest" ] || echo "$f"
done)
if [ -n "$missing" ]; then
    say "the installed package lacks these files of the checkout:" >&2
    printf '  %s\n' $missing >&2
    exit 1
fi
say "installed package holds every tracked file of prober/ and profiles/ ($site)"

# The installed tool sees exactly the profiles of the checkout, by name and by set.
names='from prober.profiles import loader; s = loader.set_names()
print("\n".join(f"{k}: {sorted(s[k])}" for k in sorted(s)))'
"$work/venv/bin/python" -c "$names" >installed.txt
PYTHONPATH="$REPO" "$work/venv/bin/python" -c "$names" >checkout.txt
if ! diff -u checkout.txt installed.txt >&2; then
    say "the installed tool's profile sets differ from the checkout's (diff above)" >&2; exit 1
fi
n_all=$("$work/venv/bin/python" -c 'from prober.profiles import loader; print(len(loader.available_names()))')
n_default=$("$work/venv/bin/python" -c 'from prober.profiles import loader; print(len(loader.set_names()["default"]))')
say "installed tool sees the checkout's $n_all profiles ($n_default in the default set)"

run prober --version
run prober profiles dirs

prober demo serve --port-file ports >serve.log 2>&1 &
server=$!
for _ in $(seq 100); do [ -s ports ] && break; sleep 0.1; done
[ -s ports ] || { cat serve.log >&2; say "demo endpoint did not start" >&2; exit 1; }
# shellcheck disable=SC1091
. ./ports
target="127.0.0.1:$FRONT"

json_check() {  # FILE PYTHON-EXPRESSION-OVER-d MESSAGE
    "$work/venv/bin/python" -c "import json, sys; d = json.load(open(sys.argv[1]))
sys.exit(0 if ($2) else 1)" "$1" || { say "$3" >&2; exit 1; }
}

run prober probe "$target" --json probe-default.json
json_check probe-default.json "len(d['profiles']) == $n_default and d['complete']" \
    "probe with the default set did not run all $n_default default profiles"
run prober probe "$target" -p firefox-137-win11 --json probe-firefox.json
json_check probe-firefox.json "[c['outcome'] for c in d['summary']] == ['ok']" \
    "firefox-137-win11 did not connect to the demo endpoint"
run prober policy "$target"
run prober whatif --policy "$WHATIF_POLICY" --json whatif.json
json_check whatif.json "len(d['clients']) == $n_all + 6" \
    "whatif with the default clients did not simulate all $n_all profiles + 6 version sweeps"
run prober check "$target" --expect example:demo --junit junit.xml
printf '\n$ prober check --example demo >expect.yaml\n'
prober check --example demo >expect.yaml
run prober check "$target" --expect expect.yaml -q
run prober demo
say "OK: built, installed outside the checkout, and every command ran from $work/run"
