#!/bin/sh
# The kubeadm phase, run by job.sh inside the guest when the host shared a directory (9p tag
# "kube", at /mnt/kube) holding the official release binaries and images:
#   /mnt/kube/kubeadm, kubelet, kubectl     (from https://dl.k8s.io/release/<v>/bin/linux/<arch>/)
#   /mnt/kube/images/*.tar                  control-plane images as OCI or docker archives
#                                           (scripts/kube_images.ts makes them from binaries)
#                                           (kube-apiserver, kube-controller-manager,
#                                           kube-scheduler, kube-proxy, etcd, coredns, pause)
# Steps: import the images with our CLI, kubeadm init against our socket, wait for the node to
# be Ready, run a pod, exec into it, read its logs, port-forward to it, delete it. Each step is
# reported through job.sh's `check`.
set -u
K=/mnt/kube
SOCK=unix:///run/k8scontainerd/k8scontainerd.sock
export KUBECONFIG=/etc/kubernetes/admin.conf

check kube-install sh -ec "
  install -m 0755 $K/kubeadm $K/kubelet $K/kubectl /usr/local/bin/
  mkdir -p /etc/systemd/system/kubelet.service.d /var/lib/kubelet
  cat > /etc/systemd/system/kubelet.service <<'UNIT'
[Unit]
Description=kubelet
After=k8scontainerd.service
Wants=k8scontainerd.service
[Service]
ExecStart=/usr/local/bin/kubelet
Restart=always
RestartSec=5
[Install]
WantedBy=multi-user.target
UNIT
  # kubeadm's usual drop-in: the flags kubeadm init writes for the kubelet.
  cat > /etc/systemd/system/kubelet.service.d/10-kubeadm.conf <<'UNIT'
[Service]
Environment=\"KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf\"
Environment=\"KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml\"
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
ExecStart=
ExecStart=/usr/local/bin/kubelet \$KUBELET_KUBECONFIG_ARGS \$KUBELET_CONFIG_ARGS \$KUBELET_KUBEADM_ARGS
UNIT
  systemctl daemon-reload
  systemctl enable kubelet
  kubeadm version -o short
"

check kube-images sh -ec "
  for f in $K/images/*.tar; do k8scontainerd -n k8s.io images import \"\$f\"; done
  k8scontainerd -n k8s.io images ls
"

# The pause image kubeadm expects becomes the sandbox image; the pod network is a CNI bridge.
check kube-runtime-config sh -ec "
  v=\$(kubeadm version -o short)
  pause=\$(kubeadm config images list --kubernetes-version \"\$v\" 2>/dev/null | grep /pause: | head -1)
  [ -n \"\$pause\" ]
  printf '[cri]\ncgroup_driver = \"systemd\"\nsandbox_image = \"%s\"\n' \"\$pause\" > /etc/k8scontainerd/config.toml
  mkdir -p /etc/cni/net.d
  rm -f /etc/cni/net.d/*.conflist
  cat > /etc/cni/net.d/10-kubeadm.conflist <<'NET'
{\"cniVersion\": \"1.0.0\", \"name\": \"kubeadm-vm\", \"plugins\": [
  {\"type\": \"bridge\", \"bridge\": \"cni0\", \"isGateway\": true, \"ipMasq\": false,
   \"ipam\": {\"type\": \"host-local\", \"ranges\": [[{\"subnet\": \"10.90.0.0/24\"}]],
              \"routes\": [{\"dst\": \"0.0.0.0/0\"}]}},
  {\"type\": \"portmap\", \"capabilities\": {\"portMappings\": true}}]}
NET
  swapoff -a
  # What kubeadm's preflight wants, kept for the boot after the reboot too.
  echo br_netfilter > /etc/modules-load.d/k8s.conf
  modprobe br_netfilter
  printf '%s\n' net.ipv4.ip_forward=1 net.ipv6.conf.default.forwarding=1 \
    net.ipv6.conf.all.forwarding=1 net.bridge.bridge-nf-call-iptables=1 > /etc/sysctl.d/99-k8s.conf
  sysctl -p /etc/sysctl.d/99-k8s.conf
  systemctl restart k8scontainerd
"

# Under TCG the control plane takes minutes to come up: kubeadm's timeouts raised (v1beta4).
# No coredns image (scripts/kube_images.ts skips it without a coredns binary): its addon
# phase is skipped, and said so.
# Snapshots every 60 s into the 9p job dir while kubeadm waits, so that a boot the host has to
# kill on its timeout still says what the control plane was doing (static pods, their logs, the
# kubelet's last words, load).
kube_diag() {
  while :; do
    {
      echo "=== $(date -u +%T) up $(cut -d' ' -f1 /proc/uptime)s load $(cut -d' ' -f1-3 /proc/loadavg)"
      free -m | sed -n 2p
      k8scontainerd -n k8s.io tasks ls 2>&1 | head -20
      for f in /var/log/pods/*/*/*.log; do
        [ -f "$f" ] && { echo "--- $f"; tail -n 3 "$f" | cut -c1-300; }
      done
      journalctl -u kubelet -n 8 --no-pager -o cat 2>&1 | cut -c1-300
    } >> "$J/kubeadm.diag" 2>&1
    sleep 60
  done
}
kube_diag &
diag=$!

# Under TCG a Go control plane starts in minutes, not seconds: kubeadm's static pods' startup
# and liveness probes (about 4 min) would restart the apiserver and etcd before they are up,
# over and over. Patches (kubeadm's --patches, strategic merge) give them 30 min.
mkdir -p /etc/kubernetes/vm-patches
for c in kube-apiserver kube-controller-manager kube-scheduler etcd; do
  printf 'spec:\n  containers:\n  - name: %s\n    startupProbe:\n      failureThreshold: 180\n      timeoutSeconds: 60\n    livenessProbe:\n      failureThreshold: 60\n      timeoutSeconds: 60\n' "$c" \
    > "/etc/kubernetes/vm-patches/$c+strategic.yaml"
done

check kubeadm-init sh -ec "
  v=\$(kubeadm version -o short)
  skip=
  k8scontainerd -n k8s.io images ls -q | grep -q /coredns: || { skip=--skip-phases=addon/coredns; echo 'no coredns image: addon/coredns skipped'; }
  # The NIC's IPv4 address, named: left to itself kubeadm took the NIC's SLAAC IPv6 address
  # (no IPv4 default route yet under TCG), and the apiserver refused it against the IPv4
  # service range (\"service IP family must match public address family\"), restarting forever.
  ip4=
  for i in \$(seq 1 120); do
    ip4=\$(ip -4 -o addr show scope global | awk '{print \$4}' | cut -d/ -f1 | head -1)
    [ -n \"\$ip4\" ] && break
    sleep 1
  done
  [ -n \"\$ip4\" ] || { echo 'no IPv4 address on the guest NIC after 120 s'; ip addr; exit 1; }
  echo \"advertising \$ip4\"
  cat > /etc/kubernetes-kubeadm.yaml <<YAML
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
patches:
  directory: /etc/kubernetes/vm-patches
localAPIEndpoint:
  advertiseAddress: \$ip4
nodeRegistration:
  criSocket: $SOCK
  kubeletExtraArgs:
  - name: node-ip
    value: \$ip4
  ignorePreflightErrors: [NumCPU, Mem, Swap, ImagePull, FileExisting-crictl, FileExisting-conntrack, FileExisting-socat, FileExisting-ebtables, FileExisting-ethtool, SystemVerification]
timeouts:
  controlPlaneComponentHealthCheck: 30m
  kubeletHealthCheck: 15m
  kubernetesAPICall: 5m
  tlsBootstrap: 15m
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: \$v
networking:
  podSubnet: 10.90.0.0/16
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: systemd
failSwapOn: false
YAML
  kubeadm init --config /etc/kubernetes-kubeadm.yaml \$skip > $J/kubeadm-init.log 2>&1 || { tail -30 $J/kubeadm-init.log; exit 1; }
  tail -20 $J/kubeadm-init.log
  grep -q 'failureThreshold: 180' /etc/kubernetes/manifests/kube-apiserver.yaml && echo 'probe patches applied'
  test -f /etc/kubernetes/admin.conf
"

check node-ready sh -ec "
  kubectl taint nodes --all node-role.kubernetes.io/control-plane- || true
  kubectl wait --for=condition=Ready node --all --timeout=600s
  kubectl get nodes -o wide
"

# The workload: the project's busybox fixture from the guest's registry (pods.ts pushed it in
# the first phase; run on its own, this phase pulls it here).
[ -f /mnt/job/pods.json ] ||
  check kube-workload-image "$deno" run -A --no-check "$P/vm/guest/pods.ts" image /mnt/job/pods.json
IMG=$(sed -n 's/.*"busybox":"\([^"]*\)".*/\1/p' /mnt/job/pods.json)
kill $diag 2>/dev/null

check kube-pod sh -ec "
  # The controller-manager makes the namespace's default service account: under TCG that can
  # come after the node is Ready, and a pod created before it is refused (Forbidden).
  for i in \$(seq 1 300); do kubectl get serviceaccount default >/dev/null 2>&1 && break; sleep 1; done
  kubectl get serviceaccount default
  kubectl run web --image=$IMG --image-pull-policy=IfNotPresent --restart=Never --command -- sh -c \
    'mkdir -p /www && echo served-by-pod > /www/index.html && echo hello from the pod && exec httpd -f -p 8080 -h /www'
  kubectl wait --for=condition=Ready pod/web --timeout=300s
  kubectl get pod web -o wide
"
check kube-exec sh -ec "
  kubectl exec web -- sh -c 'echo exec-ok from \$(hostname)' | grep exec-ok
  echo fed-by-stdin | kubectl exec -i web -- sh -c 'read v; echo got:\$v' | grep got:fed-by-stdin
  rc=0; kubectl exec web -- sh -c 'exit 7' || rc=\$?
  [ \$rc = 7 ]
"
check kube-logs sh -ec "kubectl logs web | grep 'hello from the pod'"
check kube-port-forward sh -ec "
  kubectl port-forward pod/web 18080:8080 > /tmp/pf.log 2>&1 &
  pf=\$!
  for i in \$(seq 1 50); do busybox wget -qO- http://127.0.0.1:18080/ 2>/dev/null | grep -q served-by-pod && break; sleep 0.5; done
  busybox wget -qO- http://127.0.0.1:18080/ | grep served-by-pod
  kill \$pf
"
check kube-delete sh -ec "
  kubectl delete pod web --wait --timeout=120s
  ! kubectl get pod web 2>/dev/null
"

# cgroup v2 with the systemd driver, which host mode (cgroup v1, cgroupfs) cannot see: the
# limits land in the container's own cgroup, the kubelet's stats summary has its figures, and
# an OOM kill is reported as OOMKilled.
check kube-limits-stats-oom sh -ec "
  kubectl apply -f - <<YAML
apiVersion: v1
kind: Pod
metadata: {name: limits}
spec:
  terminationGracePeriodSeconds: 5
  containers:
  - name: app
    image: $IMG
    imagePullPolicy: IfNotPresent
    command: [sleep, '3600']
    resources: {limits: {memory: 64Mi, cpu: 250m}}
---
apiVersion: v1
kind: Pod
metadata: {name: oom}
spec:
  restartPolicy: Never
  containers:
  - name: hog
    image: $IMG
    imagePullPolicy: IfNotPresent
    # dd, the container's only process, fills one 100 MiB buffer: far over the limit.
    command: [dd, if=/dev/zero, of=/dev/null, bs=100M, count=1]
    resources: {limits: {memory: 32Mi}}
YAML
  kubectl wait --for=condition=Ready pod/limits --timeout=300s
  mem=\$(kubectl exec limits -- cat /sys/fs/cgroup/memory.max)
  cpu=\$(kubectl exec limits -- cat /sys/fs/cgroup/cpu.max)
  echo \"memory.max \$mem, cpu.max \$cpu\"
  [ \"\$mem\" = 67108864 ] && [ \"\$cpu\" = '25000 100000' ]
  $deno run -A --no-check $P/vm/guest/kube_summary.ts limits app
  kubectl wait --for=jsonpath='{.status.containerStatuses[0].state.terminated.reason}'=OOMKilled pod/oom --timeout=300s
  code=\$(kubectl get pod oom -o jsonpath='{.status.containerStatuses[0].state.terminated.exitCode}')
  kubectl get pod oom
  [ \"\$code\" = 137 ]
  kubectl delete pod limits oom --wait --timeout=120s
"

# Init containers, emptyDir and configMap volumes, and a liveness probe that fails once: the
# container is restarted and its first run's output is in kubectl logs --previous.
check kube-init-volumes-probe sh -ec "
  kubectl create configmap vmcfg --from-literal=greeting=hello-from-configmap
  kubectl apply -f - <<YAML
apiVersion: v1
kind: Pod
metadata: {name: live}
spec:
  terminationGracePeriodSeconds: 5
  volumes:
  - {name: work, emptyDir: {}}
  - {name: cfg, configMap: {name: vmcfg}}
  initContainers:
  - name: init
    image: $IMG
    imagePullPolicy: IfNotPresent
    command: [sh, -c, 'echo init-ran > /work/init']
    volumeMounts: [{name: work, mountPath: /work}]
  containers:
  - name: app
    image: $IMG
    imagePullPolicy: IfNotPresent
    # The emptyDir outlives the restart: the second run stays healthy.
    command: [sh, -c, 'cat /work/init /cfg/greeting; touch /tmp/healthy; if [ ! -f /work/ran ]; then touch /work/ran; sleep 5; rm /tmp/healthy; fi; exec sleep 3600']
    volumeMounts: [{name: work, mountPath: /work}, {name: cfg, mountPath: /cfg}]
    livenessProbe:
      exec: {command: [cat, /tmp/healthy]}
      initialDelaySeconds: 1
      periodSeconds: 3
      failureThreshold: 1
      timeoutSeconds: 30
YAML
  kubectl wait --for=jsonpath='{.status.containerStatuses[0].restartCount}'=1 pod/live --timeout=400s
  # The first run's end as the kubelet reports it (its status may lag the restart count).
  kubectl wait --for=jsonpath='{.status.containerStatuses[0].lastState.terminated.exitCode}'=137 pod/live --timeout=120s ||
    { kubectl get pod live -o jsonpath='{.status.containerStatuses}'; exit 1; }
  kubectl wait --for=condition=Ready pod/live --timeout=300s
  kubectl logs live -c app --previous > /tmp/previous.log ||
    { kubectl get pod live -o jsonpath='{.status.containerStatuses}'; exit 1; }
  cat /tmp/previous.log
  grep -qx init-ran /tmp/previous.log && grep -qx hello-from-configmap /tmp/previous.log
  kubectl get events --field-selector involvedObject.name=live -o jsonpath='{.items[*].reason}' | tee /tmp/events
  echo
  grep -q Unhealthy /tmp/events
  kubectl delete pod live --wait --timeout=120s
  kubectl delete configmap vmcfg
"

# The checks below are shell functions (check runs them in a subshell, errexit on): their
# kubectl lines need quotes of their own.

# kubectl exec -it under a terminal, as an operator's (script from util-linux, its stdin kept
# open and silent), and kubectl attach to a running container's stdin and stdout.
kube_tty_attach() (
  set -e
  kubectl apply -f - <<YAML
apiVersion: v1
kind: Pod
metadata: {name: attachee}
spec:
  terminationGracePeriodSeconds: 5
  containers:
  - name: app
    image: $IMG
    imagePullPolicy: IfNotPresent
    stdin: true
    command: [sh, -c, 'echo ready; while read l; do echo "echo:\$l"; done']
YAML
  kubectl wait --for=condition=Ready pod/attachee --timeout=300s
  rc=0
  sleep 20 | script -qec "kubectl exec -it attachee -c app -- sh -c 'tty; stty size; exit 4'" /dev/null > /tmp/tty.out || rc=$?
  echo "exec -it: exit $rc:" $(tr -d '\r' < /tmp/tty.out)
  [ "$rc" = 4 ]
  grep -q '^/dev/pts/[0-9]' /tmp/tty.out
  grep -Eq '^[0-9]+ [0-9]+' /tmp/tty.out
  (for i in $(seq 1 20); do echo through-attach; sleep 1; done) |
    timeout 40 kubectl attach -i attachee -c app > /tmp/attach.out 2>&1 || true
  grep -q 'echo:through-attach' /tmp/attach.out
  # Through the container's own stdout: the log has it too.
  kubectl logs attachee | grep -q 'echo:through-attach'
  echo "attach: $(grep -c 'echo:through-attach' /tmp/attach.out) lines echoed"
  kubectl delete pod attachee --wait --timeout=120s
)
check kube-tty-attach kube_tty_attach

# kubectl delete honours the grace period: the preStop hook runs, then SIGTERM, which the
# container traps and exits on, well before the grace period ends (a hostPath records both).
kube_graceful() (
  set -e
  out=/var/tmp/vm-graceful
  rm -rf $out
  mkdir -p $out
  kubectl apply -f - <<YAML
apiVersion: v1
kind: Pod
metadata: {name: graceful}
spec:
  terminationGracePeriodSeconds: 120
  volumes: [{name: out, hostPath: {path: $out}}]
  containers:
  - name: app
    image: $IMG
    imagePullPolicy: IfNotPresent
    command: [sh, -c, 'trap "echo TERM >> /out/log; exit 0" TERM; echo up >> /out/log; while true; do sleep 1; done']
    lifecycle:
      preStop:
        exec: {command: [sh, -c, 'echo prestop >> /out/log']}
    volumeMounts: [{name: out, mountPath: /out}]
YAML
  kubectl wait --for=condition=Ready pod/graceful --timeout=300s
  for i in $(seq 1 60); do grep -q up $out/log 2>/dev/null && break; sleep 1; done
  t0=$(date +%s)
  kubectl delete pod graceful --wait --timeout=180s
  took=$(($(date +%s) - t0))
  echo "deleted in ${took} s; the container wrote:" $(cat $out/log)
  [ "$(tr '\n' ' ' < $out/log)" = "up prestop TERM " ]
  [ $took -lt 60 ]
)
check kube-graceful-delete kube_graceful

# What the kubelet shows for an image that cannot be pulled and a command that does not exist.
# The guest's registry ran only while the workload image was pulled: the missing image names a
# port nothing listens on.
kube_errors() (
  set -e
  kubectl apply -f - <<YAML
apiVersion: v1
kind: Pod
metadata: {name: missing}
spec:
  terminationGracePeriodSeconds: 5
  containers:
  - {name: app, image: '127.0.0.1:5999/does-not-exist:v0', command: ['true']}
---
apiVersion: v1
kind: Pod
metadata: {name: nocmd}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 5
  containers:
  - {name: app, image: '$IMG', imagePullPolicy: IfNotPresent, command: [/no/such/binary]}
YAML
  w='{.status.containerStatuses[0].state.waiting'
  t='{.status.containerStatuses[0].state.terminated'
  for i in $(seq 1 300); do
    r=$(kubectl get pod missing -o jsonpath="$w.reason}")
    case "$r" in ErrImagePull | ImagePullBackOff) break ;; esac
    sleep 1
  done
  m=$(kubectl get pod missing -o jsonpath="$w.message}")
  echo "missing image: $r: $m"
  case "$r" in ErrImagePull | ImagePullBackOff) ;; *) exit 1 ;; esac
  echo "$m" | grep -q does-not-exist
  echo "$m" | grep -Eqi 'refused|not found|unknown'
  for i in $(seq 1 300); do
    r=$(kubectl get pod nocmd -o jsonpath="$w.reason}$t.reason}")
    case "$r" in CreateContainerError | RunContainerError | StartError) break ;; esac
    sleep 1
  done
  m=$(kubectl get pod nocmd -o jsonpath="$w.message}$t.message}")
  echo "missing command: $r: $m"
  case "$r" in CreateContainerError | RunContainerError | StartError) ;; *) exit 1 ;; esac
  echo "$m" | grep -q /no/such/binary
  kubectl delete pod missing nocmd --wait --timeout=120s
)
check kube-errors kube_errors

# Left running for the reboot: a Deployment whose pods must come back by themselves.
# IfNotPresent: the image is in the node's store (the first boot pulled it) but its registry ran
# only in that boot; `kubectl create deployment` would give a :latest image the Always policy.
check kube-keeper sh -ec "
  kubectl apply -f - <<YAML
apiVersion: apps/v1
kind: Deployment
metadata: {name: keeper}
spec:
  replicas: 2
  selector: {matchLabels: {app: keeper}}
  template:
    metadata: {labels: {app: keeper}}
    spec:
      containers:
      - name: busybox
        image: $IMG
        imagePullPolicy: IfNotPresent
        command: [sleep, '100000']
YAML
  kubectl rollout status deployment/keeper --timeout=600s
  kubectl get pods -l app=keeper -o wide
"

# The runtime killed -9 under the kubelet: systemd starts it again (Restart=always) and the
# keeper's containers are the same ones, not restarted; exec works against the new daemon.
check kube-runtime-killed sh -ec "
  list() { kubectl get pods -l app=keeper -o jsonpath='{range .items[*]}{.metadata.name}={.status.containerStatuses[0].containerID}/{.status.containerStatuses[0].restartCount} {end}'; }
  before=\$(list)
  echo \"before: \$before\"
  n=\$(systemctl show -p NRestarts --value k8scontainerd)
  # Only the daemon: KillMode=process leaves the conmons alone, so must a kill.
  systemctl kill --kill-whom=main -s KILL k8scontainerd
  for i in \$(seq 1 180); do
    [ \"\$(systemctl show -p NRestarts --value k8scontainerd)\" -gt \"\$n\" ] &&
      [ \"\$(systemctl show -p ActiveState --value k8scontainerd)\" = active ] && break
    sleep 1
  done
  systemctl show -p NRestarts -p ActiveState k8scontainerd
  # A few PLEG relists (1 s each) and a node status update against the new daemon.
  sleep 20
  after=\$(list)
  echo \"after:  \$after\"
  [ \"\$before\" = \"\$after\" ]
  # What kubeadm-after-reboot compares with: the containers it must see replaced.
  echo \"\$after\" > $J/keeper-before-reboot
  p=\$(kubectl get pods -l app=keeper -o jsonpath='{.items[0].metadata.name}')
  kubectl exec \"\$p\" -- sh -c 'echo exec-after-kill' | grep exec-after-kill
"
