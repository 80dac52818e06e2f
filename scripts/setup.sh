#!/usr/bin/env bash
# Installs what k8scontainerd needs and is missing, idempotently: Debian packages, then the
# pinned Deno and npm libraries (package.json). `--test` adds what the test suite and the
# benchmarks use. `--aarch64` adds what scripts/test-aarch64.sh needs to run the unit suite with
# the aarch64 Deno: on an x86_64 host qemu-user-static, binfmt_misc registration of
# qemu-aarch64, the arm64 C runtime (libc6:arm64, libgcc-s1:arm64) and the arm64 Deno from npm
# in .cache/deno-aarch64/ (see scripts/deno-aarch64); on an arm64 host nothing more.
# Safe to run again; it only installs what is absent.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
want_test=0
want_aarch64=0
for a in "$@"; do
  case $a in
    --test) want_test=1 ;;
    --aarch64) want_aarch64=1 ;;
    *) echo "usage: scripts/setup.sh [--test] [--aarch64]" >&2; exit 2 ;;
  esac
done
host_arch=$(dpkg --print-architecture)
# The aarch64 Deno under emulation: only on x86_64 hosts (an arm64 host runs it natively).
emulate_aarch64=0
if [ "$want_aarch64" = 1 ] && [ "$host_arch" = amd64 ]; then emulate_aarch64=1; fi

# What the daemon runs on a node.
pkgs=(runc conmon crun containernetworking-plugins iproute2 iptables catatonit)
# Building (protoc for `deno task gen`) and the npm client that fetches Deno.
pkgs+=(protobuf-compiler nodejs npm)
# Test fixtures and side-by-side benchmarks: a real registry, test image inputs, containerd.
if [ "$want_test" = 1 ]; then
  pkgs+=(docker-registry busybox-static skopeo umoci containerd procps psmisc)
  # etcd for the control-plane images test (scripts/kube_images.ts) and a kubelet on the host.
  pkgs+=(etcd-server)
  # apparmor_parser checks the default AppArmor profile the daemon generates (-Q: no kernel).
  pkgs+=(apparmor)
  # The VM suite (vm/, e2e/vm_test.ts): Debian guests built with debootstrap, booted by QEMU.
  pkgs+=(debootstrap qemu-utils e2fsprogs)
  case $host_arch in
    amd64) pkgs+=(qemu-system-x86) ;;
    arm64) pkgs+=(qemu-system-arm) ;;
  esac
fi
# qemu-user for the aarch64 Deno, binfmt-support to register it for the arm64 programs that Deno
# starts (itself: tests spawn Deno.execPath()), and the C runtime the arm64 Deno links against
# (multiarch, so its loader /lib/ld-linux-aarch64.so.1 and libc.so.6, which ffi/ dlopens, are
# found without a sysroot).
# qemu-system-arm boots the arm64 VM guest (`deno task vm:arm64`).
if [ "$emulate_aarch64" = 1 ]; then
  pkgs+=(qemu-user-static binfmt-support libc6:arm64 libgcc-s1:arm64 qemu-system-arm)
fi

# The multi-arch fixture carries Debian's busybox for the other architecture too (fetched with
# `apt-get download`, never installed), so dpkg must know that architecture.
# The arm64 C runtime of --aarch64 needs it too.
foreign_arch=
if [ "$want_test" = 1 ] || [ "$emulate_aarch64" = 1 ]; then
  case $host_arch in
    amd64) foreign_arch=arm64 ;;
    arm64) foreign_arch=amd64 ;;
  esac
fi
need_update=0
if [ -n "$foreign_arch" ] && ! dpkg --print-foreign-architectures | grep -qx "$foreign_arch"; then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: adding dpkg architecture $foreign_arch (multi-arch test image, aarch64 suite)"
    dpkg --add-architecture "$foreign_arch"
    need_update=1
  elif [ "$emulate_aarch64" = 1 ]; then
    echo "setup: dpkg lacks $foreign_arch, needed for libc6:arm64 (run as root)" >&2
    exit 1
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
if [ "${#missing[@]}" -gt 0 ] && [ "$need_update" = 1 ]; then
  # A just-added architecture has no package lists yet: fetch them before installing from it.
  apt-get update -qq
  need_update=0
fi
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

if [ "$emulate_aarch64" = 1 ]; then
  # binfmt_misc: the kernel runs arm64 executables through qemu-aarch64-static ("F": the
  # interpreter is opened now, so it also works inside chroots and mount namespaces).
  binfmt=/proc/sys/fs/binfmt_misc
  if [ ! -e "$binfmt/register" ]; then
    if [ "$(id -u)" != 0 ]; then
      echo "setup: binfmt_misc is not mounted (run as root to mount it)" >&2
      exit 1
    fi
    echo "setup: mounting binfmt_misc"
    mount -t binfmt_misc binfmt_misc "$binfmt"
  fi
  if ! grep -qx enabled "$binfmt/qemu-aarch64" 2>/dev/null; then
    if [ "$(id -u)" != 0 ]; then
      echo "setup: qemu-aarch64 is not registered with binfmt_misc (run as root)" >&2
      exit 1
    fi
    echo "setup: registering qemu-aarch64 with binfmt_misc"
    update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 ||
      update-binfmts --import qemu-aarch64 >/dev/null
  fi
  grep -q '^flags: .*F' "$binfmt/qemu-aarch64" ||
    echo "setup: note: qemu-aarch64's binfmt entry lacks the F flag" >&2
fi

if [ "$want_aarch64" = 1 ] && [ "$host_arch" != arm64 ]; then
  # The arm64 build of the pinned Deno, from npm (never installed into node_modules, whose
  # optional dependency only takes the host's build). The registry may lack the pinned version
  # for this platform: then the newest release of the same minor line, said out loud.
  pin=$(grep -o '"deno": "[^"]*"' package.json | cut -d'"' -f4)
  cache=.cache/deno-aarch64
  link=$cache/for-$pin # -> the version used for this pin
  if [ ! -x "$link/deno" ]; then
    want=$pin
    if ! npm view "@deno/linux-arm64-glibc@$pin" version 2>/dev/null | grep -qx "$pin"; then
      want=$(npm view @deno/linux-arm64-glibc versions --json 2>/dev/null | tr -d ' ",[]' |
        grep -E "^${pin%.*}\.[0-9]+$" | sort -V | tail -1 || true)
      if [ -z "$want" ]; then
        echo "setup: npm has no @deno/linux-arm64-glibc $pin nor any other ${pin%.*}.x" >&2
        exit 1
      fi
      echo "setup: note: npm lacks @deno/linux-arm64-glibc@$pin; using $want (same minor line)"
    fi
    if [ ! -x "$cache/$want/deno" ]; then
      echo "setup: fetching @deno/linux-arm64-glibc@$want into $cache/$want"
      mkdir -p "$cache"
      # A fetch cut short by an earlier, killed run leaves its temp dir: drop those first.
      rm -rf "$cache"/.fetch-*
      tmp=$(mktemp -d "$cache/.fetch-XXXXXX")
      if ! (cd "$tmp" && npm pack --silent "@deno/linux-arm64-glibc@$want" >/dev/null &&
        tar xzf ./*.tgz); then
        rm -rf "$tmp"
        echo "setup: npm pack @deno/linux-arm64-glibc@$want failed" >&2
        exit 1
      fi
      mkdir -p "$cache/$want"
      chmod +x "$tmp/package/deno"
      mv "$tmp/package/deno" "$cache/$want/deno"
      rm -rf "$tmp"
    fi
    ln -sfn "$want" "$link"
  fi
  echo "setup: aarch64 Deno $(readlink "$link") (pin $pin): $link/deno"
fi
