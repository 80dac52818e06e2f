#!/bin/sh
# /usr/local/bin/k8scontainerd in the test guest: the project from its 9p share, run by the
# pinned Deno in its node_modules (the compiled binary needs a denort these machines lack).
export DENO_DIR="${DENO_DIR:-/var/cache/deno}"
exec /opt/k8scontainerd/scripts/k8scontainerd "$@"
