#!/bin/sh
# Runs inside the guest (k8sc-vm-job.service → /mnt/job/run.sh → here) for one boot's phase:
#   install-and-test  install k8scontainerd as a systemd service, run the CRI e2e suite
#                     against it, leave a pod running, power off cleanly (the "reboot")
#   after-reboot      check that the service came back by itself, cleaned up, and reports
#                     the earlier pod correctly; power off
#   kubeadm           (only when the host shares kubeadm/kubelet/kubectl and images) kubeadm
#                     init against our socket, a pod, exec, logs, port-forward, delete; a
#                     Deployment left running; power off (a reboot)
#   kubeadm-after-reboot  the control plane and the Deployment's pods came back by themselves
#   critest           (only when the host shares critest, crictl, run.sh and the conformance
#                     registry's data, 9p tag "critest") critest against the systemd service
#                     with runc, then the crun handler on a focused set
# Every step appends a JSON line to /mnt/job/<phase>.results for the host to assert on; the
# guest always powers itself off at the end (the host kills it on a timeout).
set -u
phase=$1
J=/mnt/job
P=/opt/k8scontainerd
R=$J/$phase.results
: > "$R"
export NO_COLOR=1 DENO_DIR=/var/cache/deno HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
deno="$P/scripts/deno"

now() { date +%s.%N; }
# result <step> <ok:true|false> <seconds> <detail>
result() {
  # JSON-safe: no control characters (colour codes, tabs, newlines), quotes escaped.
  detail=$(printf '%s' "$4" | tail -c 3000 | tr '\n\t' '  ' | tr -d '\000-\037' |
    sed -e 's/\\/\\\\/g' -e 's/"/\\"/g')
  printf '{"step":"%s","ok":%s,"seconds":%s,"detail":"%s"}\n' "$1" "$2" "$3" "$detail" >> "$R"
  echo "k8sc-vm: $1 ok=$2 (${3}s)"
}
# check <step> <command...>: runs the command, records its status and the tail of its output
check() {
  step=$1; shift
  t=$(now)
  out=$("$@" 2>&1); rc=$?
  s=$(awk "BEGIN { printf \"%.1f\", $(now) - $t }")
  if [ $rc = 0 ]; then result "$step" true "$s" "$out"; else result "$step" false "$s" "exit $rc: $out"; fi
  return $rc
}

# The shipped unit with the systemd cgroup driver, enabled (the first phase; critest alone too).
install_service() {
  check install sh -ec "
    install -m 0644 $P/packaging/systemd/k8scontainerd.service /etc/systemd/system/
    install -m 0755 $P/vm/guest/k8scontainerd-wrapper.sh /usr/local/bin/k8scontainerd
    mkdir -p /etc/systemd/system/k8scontainerd.service.d /etc/k8scontainerd
    install -m 0644 $P/vm/guest/k8scontainerd-vm.conf /etc/systemd/system/k8scontainerd.service.d/
    printf '[cri]\ncgroup_driver = \"systemd\"\n' > /etc/k8scontainerd/config.toml
    systemctl daemon-reload
    systemctl enable k8scontainerd 2>&1
  "
}

echo "k8sc-vm: phase $phase on $(uname -m), kernel $(uname -r), cgroup $(stat -fc %T /sys/fs/cgroup)"
result boot true "$(cut -d' ' -f1 /proc/uptime)" "$(uname -a); init=$(cat /proc/1/comm); cgroupfs=$(stat -fc %T /sys/fs/cgroup)"

case $phase in
install-and-test)
  install_service
  # Type=notify: `start` returns when the daemon sent READY=1.
  check service-start systemctl start k8scontainerd
  check service-ready sh -ec '
    systemctl show -p Type -p ActiveState -p SubState -p StatusText -p NRestarts k8scontainerd
    [ "$(systemctl show -p Type --value k8scontainerd)" = notify ]
    [ "$(systemctl show -p ActiveState --value k8scontainerd)" = active ]
    systemctl show -p StatusText --value k8scontainerd | grep -q "serving on /run/k8scontainerd/k8scontainerd.sock"
    k8scontainerd version
  '
  check doctor k8scontainerd doctor
  check cri-e2e sh -c "cd $P && K8SC_E2E_SYSTEMD_UNIT=k8scontainerd.service $deno test -A --no-check e2e/cri_test.ts > $J/cri-e2e.log 2>&1; rc=\$?; tail -c 1500 $J/cri-e2e.log; exit \$rc"
  # The guest boots with AppArmor on (apparmor=1 security=apparmor, vm/qemu.ts): the CRI
  # AppArmor suite runs its enabled-host checks here (its own daemon and bridge) and may not
  # skip them (K8SC_E2E_APPARMOR=required).
  check apparmor-enabled sh -ec '
    echo "enabled=$(cat /sys/module/apparmor/parameters/enabled) lsm=$(cat /sys/kernel/security/lsm)"
    [ "$(cat /sys/module/apparmor/parameters/enabled)" = Y ]
    [ -d /sys/kernel/security/apparmor ]
    echo "profiles loaded at boot: $(wc -l < /sys/kernel/security/apparmor/profiles)"
    apparmor_parser --version | head -n 1
    echo "k8scontainerd-default loaded by the service (cri-e2e): $(grep -c "^k8scontainerd-default (enforce)" /sys/kernel/security/apparmor/profiles)"
  '
  check cri-apparmor-e2e sh -c "cd $P && K8SC_E2E_APPARMOR=required $deno test -A --no-check e2e/cri_apparmor_test.ts > $J/cri-apparmor-e2e.log 2>&1; rc=\$?; tail -c 1200 $J/cri-apparmor-e2e.log; echo; echo \"host-off checks skipped since AppArmor is on: \$(grep -c 'skipped: host without AppArmor' $J/cri-apparmor-e2e.log)\"; grep -E '^(ok|FAILED) \|' $J/cri-apparmor-e2e.log; exit \$rc"
  # User namespaces, rro mounts, supplemental groups, stop signals, CDI and image volumes on
  # cgroup v2 (a daemon of its own, cgroupfs driver).
  check cri-security-e2e sh -c "cd $P && $deno test -A --no-check e2e/cri_security_test.ts > $J/cri-security-e2e.log 2>&1; rc=\$?; tail -c 1500 $J/cri-security-e2e.log; exit \$rc"
  check pod-before-reboot "$deno" run -A --no-check "$P/vm/guest/pods.ts" create "$J/pods.json"
  journalctl -u k8scontainerd -o cat > "$J/$phase.journal" 2>&1
  ;;
after-reboot)
  # The service is enabled: it must be up without anyone starting it.
  check service-after-reboot sh -ec '
    for i in $(seq 1 300); do
      [ "$(systemctl show -p ActiveState --value k8scontainerd)" = active ] && break
      sleep 1
    done
    systemctl show -p ActiveState -p SubState -p NRestarts -p ExecMainStartTimestamp k8scontainerd
    [ "$(systemctl show -p ActiveState --value k8scontainerd)" = active ]
  '
  check pod-after-reboot "$deno" run -A --no-check "$P/vm/guest/pods.ts" check "$J/pods.json"
  journalctl -b -u k8scontainerd -o cat > "$J/$phase.journal" 2>&1
  ;;
kubeadm)
  # Run on its own (K8SC_VM_PHASES=kubeadm,kubeadm-after-reboot) no earlier phase installed the
  # service: install and start it here.
  if ! systemctl cat k8scontainerd.service > /dev/null 2>&1; then
    install_service
    check service-start systemctl start k8scontainerd
  fi
  check service-active sh -ec '
    for i in $(seq 1 300); do
      [ "$(systemctl show -p ActiveState --value k8scontainerd)" = active ] && break
      sleep 1
    done
    [ "$(systemctl show -p ActiveState --value k8scontainerd)" = active ]
  '
  . "$P/vm/guest/kubeadm.sh"
  journalctl -b -u k8scontainerd -o cat > "$J/$phase.journal" 2>&1
  journalctl -b -u kubelet -o cat > "$J/$phase.kubelet-journal" 2>&1
  ;;
kubeadm-after-reboot)
  export KUBECONFIG=/etc/kubernetes/admin.conf
  check kube-back sh -ec '
    # No cluster was made before the reboot: nothing to come back.
    [ -f /etc/kubernetes/admin.conf ] || { echo "no /etc/kubernetes/admin.conf: kubeadm init did not run"; exit 1; }
    for u in k8scontainerd kubelet; do
      for i in $(seq 1 300); do
        [ "$(systemctl show -p ActiveState --value $u)" = active ] && break
        sleep 1
      done
      [ "$(systemctl show -p ActiveState --value $u)" = active ]
    done
    # The static pods (etcd, apiserver, controller-manager, scheduler) are the kubelet'"'"'s to
    # restart from /etc/kubernetes/manifests: the API answers once they are back.
    for i in $(seq 1 900); do kubectl get --raw /readyz >/dev/null 2>&1 && break; sleep 1; done
    kubectl get --raw /readyz
    echo
    kubectl wait --for=condition=Ready node --all --timeout=300s
    kubectl -n kube-system get pods -o wide
  '
  # Until the kubelet has restarted them, the API shows the pods as they were before the reboot
  # (Running, ready, the old containers): wait for new containers, ready, then exec into one.
  check kube-pods-back sh -ec '
    list() { kubectl get pods -l app=keeper -o jsonpath="{range .items[*]}{.metadata.name}={.status.containerStatuses[0].containerID}/{.status.containerStatuses[0].ready} {end}"; }
    before=$(cat /mnt/job/keeper-before-reboot 2>/dev/null || true)
    echo "before the reboot: $before"
    now=
    for i in $(seq 1 900); do
      now=$(list) || now=
      back=yes
      [ -n "$now" ] || back=no
      for e in $now; do
        case "$e" in */true) ;; *) back=no ;; esac
        case " $before " in *" ${e%/*}/"*) back=no ;; esac
      done
      [ $back = yes ] && break
      sleep 1
    done
    echo "after the reboot: $now"
    [ $back = yes ]
    kubectl get pods -l app=keeper -o wide
    p=$(kubectl get pods -l app=keeper -o jsonpath="{.items[0].metadata.name}")
    for i in $(seq 1 30); do
      kubectl exec "$p" -- sh -c "echo exec-after-reboot" > /tmp/exec.out 2>&1 && break
      sleep 2
    done
    cat /tmp/exec.out
    grep -q exec-after-reboot /tmp/exec.out
    k8scontainerd -n k8s.io containers ls -q | wc -l
  '
  journalctl -b -u k8scontainerd -o cat > "$J/$phase.journal" 2>&1
  journalctl -b -u kubelet -o cat > "$J/$phase.kubelet-journal" 2>&1
  ;;
critest)
  # Alone (K8SC_VM_PHASES=critest) the service is not installed yet.
  [ -f /etc/systemd/system/k8scontainerd.service ] || { install_service; systemctl start k8scontainerd; }
  check service-active sh -ec '
    for i in $(seq 1 300); do
      [ "$(systemctl show -p ActiveState --value k8scontainerd)" = active ] && break
      sleep 1
    done
    [ "$(systemctl show -p ActiveState --value k8scontainerd)" = active ]
  '
  . "$P/vm/guest/critest.sh"
  journalctl -b -u k8scontainerd -o cat > "$J/$phase.journal" 2>&1
  ;;
*)
  result phase false 0 "unknown phase $phase"
  ;;
esac
result done true "$(cut -d' ' -f1 /proc/uptime)" "phase $phase finished"
sync
systemctl --no-block poweroff
