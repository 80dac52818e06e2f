#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls this): install what is missing, then
# static checks, generated-code freshness, unit and integration tests, and the e2e suites.
# Root-only tests run when this runs as root (CI does) and say so when they are skipped.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
scripts/setup.sh --test

step() { printf '\n== %s\n' "$*"; }
step "generated code is fresh"
scripts/deno task gen --check
step "type check"
scripts/deno task check
step "lint"
scripts/deno task lint
step "format"
scripts/deno fmt --check
step "unit and integration tests"
scripts/deno task test
step "end-to-end tests"
scripts/deno task e2e
