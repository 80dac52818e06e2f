#!/bin/sh
# The critest phase, sourced by job.sh inside the guest when the host shared (9p tag "critest",
# mounted here at /mnt/critest) a directory holding:
#   critest, crictl      cri-tools binaries built outside this repository
#   run.sh               the steering repo's conformance runner (shared/conformance/critest)
#   registry-data/       the data directory of the conformance registry setup-images.sh filled
# The guest serves that registry on 127.0.0.1:5000, maps registry.k8s.io and gcr.io to it with
# hosts.toml files (the daemon's default config_path), and runs critest against the systemd
# service: every spec with the default handler (runc), then a focused set with crun, which runs
# here (cgroup v2) but not on the hybrid host. A run passes when its only failure is the
# digest-pinned upstream image (not reproducible offline).
C=/mnt/critest
check critest-setup sh -ec '
  mkdir -p /mnt/critest
  mountpoint -q /mnt/critest || mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=524288 critest /mnt/critest
  # The docker-registry service the guest image starts listens on :5000: ours takes that port.
  systemctl stop docker-registry 2>/dev/null || true
  rm -rf /var/lib/critest-registry
  cp -a /mnt/critest/registry-data /var/lib/critest-registry
  printf "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /var/lib/critest-registry\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:5000\n" > /etc/critest-registry.yml
  setsid docker-registry serve /etc/critest-registry.yml > /var/log/critest-registry.log 2>&1 < /dev/null &
  for i in $(seq 1 100); do busybox wget -q -O /dev/null http://127.0.0.1:5000/v2/ 2>/dev/null && break; sleep 0.2; done
  busybox wget -q -O /dev/null http://127.0.0.1:5000/v2/
  for h in registry.k8s.io gcr.io 127.0.0.1:5000; do
    mkdir -p /etc/k8scontainerd/certs.d/$h
    printf "server = \"http://127.0.0.1:5000\"\n[host.\"http://127.0.0.1:5000\"]\n  capabilities = [\"pull\", \"resolve\"]\n" > /etc/k8scontainerd/certs.d/$h/hosts.toml
  done
  # A pod network for critest when the guest has none yet (critest alone); 10.88/16 as CRI-O.
  if ! ls /etc/cni/net.d/*.conflist >/dev/null 2>&1; then
    mkdir -p /etc/cni/net.d
    printf "%s\n" "{\"cniVersion\":\"1.0.0\",\"name\":\"critest\",\"plugins\":[{\"type\":\"bridge\",\"bridge\":\"k8sccrit0\",\"isGateway\":true,\"ipMasq\":false,\"ipam\":{\"type\":\"host-local\",\"ranges\":[[{\"subnet\":\"10.88.0.0/16\"}]]}},{\"type\":\"portmap\",\"capabilities\":{\"portMappings\":true}}]}" > /etc/cni/net.d/10-critest.conflist
  fi
  cat /etc/cni/net.d/*.conflist
  # critest loads its AppArmor test profiles with `sudo apparmor_parser`; the guest runs as root
  # and has no sudo: a pass-through stands in.
  if ! command -v sudo >/dev/null; then
    printf "#!/bin/sh\nexec \"\$@\"\n" > /usr/local/bin/sudo
    chmod 0755 /usr/local/bin/sudo
  fi
  systemctl restart k8scontainerd
  k8scontainerd version
'
# critest_run <step> <outdir> <focus regexp or ""> [critest args…]: runs critest; passes when the
# only failed (or panicked) spec is the digest-pinned image. The detail ends with the tally and failed specs.
critest_run() {
  step=$1 out=$2 focus=$3; shift 3
  check "$step" sh -c "
    cd /var/tmp && FOCUS='$focus' CRITEST=$C/critest CRICTL=$C/crictl bash $C/run.sh unix:///run/k8scontainerd/k8scontainerd.sock $out $* > $J/$step.log 2>&1
    grep -E '^critest: ' $J/$step.log | tail -n 2
    failed=\$(grep -o 'testcase name=\"\[It\][^\"]*\" classname=\"[^\"]*\" status=\"\(failed\|panicked\)\"' $out/junit.xml | sed 's/ classname=.*//')
    echo \"\$failed\"
    [ -z \"\$(echo \"\$failed\" | grep -v 'public image with digest' | grep .)\" ]
  "
}
critest_run critest-runc /var/tmp/critest-runc ""
critest_run critest-crun /var/tmp/critest-crun \
  "PodSandbox|Container runtime should support|UserNamespaces|ecursive|SupplementalGroupsPolicy" \
  -runtime-handler=crun
