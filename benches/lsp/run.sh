#!/usr/bin/env bash
# Language-server latency as an editor sees it (issue 4, "Performance"):
# donmai-lsp on generated workflows of 100, 1,000 and 5,000 steps, side by
# side with yaml-language-server (the same workflow against the grammar's
# JSON Schema) and GitHub's actions-languageserver (a GitHub Actions
# workflow of the same line count); start-up to the first diagnostics;
# completion and hover at `{{ nodes.` on donmai-lsp. See BENCHMARKS.md,
# "Language server".
#
# Usage: benches/lsp/run.sh [lsp-bench options]   (later options win)
# It builds the release binaries and installs the two npm servers, pinned
# by benches/lsp/package-lock.json, into target/lsp-bench-npm (needs node
# >= 20 and npm). `target/release/lsp-bench --help` lists the options.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
TARGET=${CARGO_TARGET_DIR:-target}
NPM_DIR=target/lsp-bench-npm

die() { echo "error: $*" >&2; exit 1; }

command -v node > /dev/null || die "node is needed for the npm language servers"
command -v npm > /dev/null || die "npm is needed to install the npm language servers"

# Reinstalled whenever the pins change; the stamp is written last, so a
# half-finished install is never taken for a finished one.
if ! cmp -s benches/lsp/package-lock.json "$NPM_DIR/installed.lock" 2> /dev/null; then
    rm -rf "$NPM_DIR"
    mkdir -p "$NPM_DIR"
    cp benches/lsp/package.json benches/lsp/package-lock.json "$NPM_DIR/"
    (cd "$NPM_DIR" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) \
        || die "cannot install the npm language servers"
    cp benches/lsp/package-lock.json "$NPM_DIR/installed.lock"
fi

cargo build --quiet --release -p donmai-lsp --bin donmai-lsp -p donmai-bench --bin lsp-bench

version_of() { node -p "require('./$NPM_DIR/node_modules/$1/package.json').version"; }
echo "date:    $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "servers: $("$TARGET/release/donmai-lsp" --version), yaml-language-server $(version_of yaml-language-server), @actions/languageserver $(version_of @actions/languageserver), node $(node --version)"

# The node servers take 0.2 s to seconds per edit, and the actions server
# grows faster than linearly with the file (over a minute per edit at
# 10,000 lines on this machine): fewer edits, and smaller sizes for it by
# default.
exec "$TARGET/release/lsp-bench" \
    --donmai-lsp "$TARGET/release/donmai-lsp" \
    --npm "$NPM_DIR" \
    --schema grammar/schema/workflow.schema.json \
    --work target/lsp-bench \
    --runs 3 \
    --yaml-sizes 100,1000 \
    --actions-sizes 100 \
    --node-edits 40 \
    --node-warmup 4 \
    --budget-secs 60 \
    --min-edits 20 \
    "$@"
