#!/usr/bin/env bash
# The unit and integration suite (what `deno task test` runs) with the aarch64 Deno: natively on
# an arm64 host, under qemu-user emulation (qemu-aarch64-static) on an x86_64 host, where a few
# tests skip and print why (they look for K8SC_EMULATED=qemu-user, set by scripts/deno-aarch64).
# Installs what it needs first (scripts/setup.sh --test --aarch64). Extra arguments go to
# `deno test` in place of the default paths, e.g. `scripts/test-aarch64.sh ffi`.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
scripts/setup.sh --test --aarch64

deno=scripts/deno-aarch64
arch=$($deno eval 'console.log(Deno.build.arch)')
if [ "$arch" != aarch64 ]; then
  echo "test-aarch64: $deno runs a $arch Deno, not aarch64" >&2
  exit 1
fi
case $(uname -m) in
  aarch64 | arm64) how="natively" ;;
  *) how="under qemu-user emulation ($(qemu-aarch64-static --version | head -1)) on $(uname -m)" ;;
esac
printf '\n== unit and integration tests, aarch64 Deno %s\n' "$how"
$deno --version | head -1
$deno eval 'console.log(`Deno.build: ${Deno.build.target}; execPath ${Deno.execPath()}`)'

paths=(src ffi scripts)
if [ "$#" -gt 0 ]; then paths=("$@"); fi
# `deno task test`'s flags, except that under emulation the type check is left out: it costs
# minutes there, and the same sources were type-checked by `deno task check` (types do not
# depend on the architecture).
check=--no-check=remote
case $how in under*) check=--no-check ;; esac
start=$(date +%s)
status=0
$deno test -A "$check" --parallel "${paths[@]}" || status=$?
echo "test-aarch64: aarch64 suite ($how) took $(($(date +%s) - start)) s, exit $status"
exit "$status"
