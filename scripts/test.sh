#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls this): install what is missing, then
# static checks, generated-code freshness, unit and integration tests, the same tests with the
# aarch64 Deno under qemu-user emulation (on x86_64 hosts; an arm64 host's native run already is
# aarch64), and the e2e suites. Root-only tests run when this runs as root (CI does) and say so
# when they are skipped.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
emulate_aarch64=0
case $(uname -m) in x86_64) emulate_aarch64=1 ;; esac
if [ "$emulate_aarch64" = 1 ]; then scripts/setup.sh --test --aarch64; else scripts/setup.sh --test; fi

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
if [ "$emulate_aarch64" = 1 ]; then
  step "unit and integration tests with the aarch64 Deno (qemu-user)"
  scripts/test-aarch64.sh
fi
step "end-to-end tests"
scripts/deno task e2e
