#!/usr/bin/env bash
# Installs what k8scontainerd needs and is missing, idempotently: Debian packages, then the
# pinned Deno and npm libraries (package.json). `--test` adds what the test suite and the
# benchmarks use. Safe to run again; it only installs what is absent.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
want_test=0
for a in "$@"; do
  case $a in
    --test) want_test=1 ;;
    *) echo "usage: scripts/setup.sh [--test]" >&2; exit 2 ;;
  esac
done

# What the daemon runs on a node.
pkgs=(runc conmon crun containernetworking-plugins iproute2 iptables catatonit)
# Building (protoc for `deno task gen`) and the npm client that fetches Deno.
pkgs+=(protobuf-compiler nodejs npm)
# Test fixtures and side-by-side benchmarks: a real registry, test image inputs, containerd.
if [ "$want_test" = 1 ]; then
  pkgs+=(docker-registry busybox-static skopeo umoci containerd procps psmisc)
  # The VM suite (vm/, e2e/vm_test.ts): Debian guests built with debootstrap, booted by QEMU.
  pkgs+=(debootstrap qemu-utils e2fsprogs)
  case $(dpkg --print-architecture) in
    amd64) pkgs+=(qemu-system-x86) ;;
    arm64) pkgs+=(qemu-system-arm) ;;
  esac
fi

# The multi-arch fixture carries Debian's busybox for the other architecture too (fetched with
# `apt-get download`, never installed), so dpkg must know that architecture.
foreign_arch=
if [ "$want_test" = 1 ]; then
  case $(dpkg --print-architecture) in
    amd64) foreign_arch=arm64 ;;
    arm64) foreign_arch=amd64 ;;
  esac
fi
need_update=0
if [ -n "$foreign_arch" ] && ! dpkg --print-foreign-architectures | grep -qx "$foreign_arch"; then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: adding dpkg architecture $foreign_arch (for the multi-arch test image)"
    dpkg --add-architecture "$foreign_arch"
    need_update=1
  else
    echo "setup: note: dpkg lacks $foreign_arch; the multi-arch fixture will use a placeholder" >&2
  fi
fi

missing=()
for p in "${pkgs[@]}"; do
  # node may come from elsewhere (e.g. a nodesource install); only require Debian's if absent.
  if [ "$p" = nodejs ] && command -v node >/dev/null; then continue; fi
  if [ "$p" = npm ] && command -v npm >/dev/null; then continue; fi
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: missing Debian packages: ${missing[*]} (run as root to install them)" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  apt-get update -qq
  need_update=0
  # Installing containerd must not leave a second runtime running on this node.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [ "$need_update" = 1 ]; then apt-get update -qq; fi
if [ "$want_test" = 1 ] && [ -x /etc/init.d/containerd ] && pgrep -x containerd >/dev/null 2>&1; then
  echo "setup: note: a containerd daemon is running on this machine (benchmarks start their own)"
fi

# The pinned Deno and libraries, from the npm registry. Re-run npm only when the pins changed.
cd "$here"
stamp=node_modules/.k8scontainerd-installed
if [ ! -f "$stamp" ] || [ package.json -nt "$stamp" ] || [ package-lock.json -nt "$stamp" ] || ! scripts/deno --version >/dev/null 2>&1; then
  echo "setup: npm install (Deno $(grep -o '"deno": "[^"]*"' package.json | cut -d'"' -f4) and libraries)"
  npm install --no-audit --no-fund --loglevel=error >/dev/null
  touch "$stamp"
fi
scripts/deno --version | head -1
