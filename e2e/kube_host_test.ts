/**
 * A real Kubernetes node on this host: etcd, kube-apiserver, kube-controller-manager,
 * kube-scheduler and a kubelet whose container runtime is a k8scontainerd daemon, all on
 * 127.0.0.1 with free ports and everything under one temp dir. The checks are what a node
 * operator does with kubectl: the node is Ready, a Deployment's pods run with pod IPs, logs,
 * exec, init containers, a liveness probe, volumes, graceful deletion, a missing image, and
 * nothing left behind once the pods are gone.
 *
 * Needs root and `K8SC_KUBE_DIR`: a directory with kubelet, kube-apiserver,
 * kube-controller-manager, kube-scheduler and kubectl (etcd in it or on PATH). The README's
 * "A kubelet on the host" says how to build them.
 *
 * Authorization is Node,RBAC (the kubelet authenticates as system:node:<name>); the components
 * and kubectl use a system:masters client certificate; the kubelet's own API authorizes with
 * AlwaysAllow after x509 authentication against the test CA.
 */
import * as grpc from "@grpc/grpc-js";
import {
  afterAll,
  beforeAll,
  describe,
  expect,
  isRoot,
  it,
  ROOT_REASON,
} from "../src/testing/bdd.ts";
import { freePort, type Registry, startRegistry } from "../scripts/fixtures/registry.ts";
import { pushFixtures } from "../scripts/fixtures/images.ts";
import { RuntimeServiceClient } from "../src/gen/runtime/v1/api.ts";
import { call } from "../src/cli/client.ts";
import { startTestDaemon, type TestDaemon } from "./harness.ts";
import { cleanUpAfterDaemon, writeCniConf, writeCriConfig } from "./cri_env.ts";

const BRIDGE = "k8skube1";
const SUBNET_PREFIX = "10.223.90.";
// The node's name and Hostname address: the kubelet refuses a loopback --node-ip ("nodeIP
// can't be loopback address") and then reports no address at all, so the apiserver reaches it by
// Hostname (--kubelet-preferred-address-types=Hostname), which resolves to 127.0.0.1.
const NODE = "localhost";
const KUBE_BINS = [
  "kubelet",
  "kube-apiserver",
  "kube-controller-manager",
  "kube-scheduler",
  "kubectl",
] as const;

function which(name: string): string | undefined {
  for (const d of (Deno.env.get("PATH") ?? "").split(":")) {
    try {
      if (Deno.statSync(`${d}/${name}`).isFile) return `${d}/${name}`;
    } catch { /* not here */ }
  }
  return undefined;
}

/** Where the binaries are, or why the suite cannot run. */
function kubeBinaries(): { bins: Record<string, string> } | { problem: string } {
  const dir = Deno.env.get("K8SC_KUBE_DIR");
  if (!dir) {
    return {
      problem: "set K8SC_KUBE_DIR to a directory with kubelet, kube-apiserver, " +
        "kube-controller-manager, kube-scheduler, kubectl (and etcd, or etcd on PATH)",
    };
  }
  const bins: Record<string, string> = {};
  for (const b of KUBE_BINS) {
    try {
      Deno.statSync(`${dir}/${b}`);
      bins[b] = `${dir}/${b}`;
    } catch {
      return { problem: `K8SC_KUBE_DIR=${dir} has no ${b}` };
    }
  }
  let etcd: string | undefined = `${dir}/etcd`;
  try {
    Deno.statSync(etcd);
  } catch {
    etcd = which("etcd");
  }
  if (!etcd) {
    return { problem: `no etcd in K8SC_KUBE_DIR=${dir} nor on PATH (apt install etcd-server)` };
  }
  bins.etcd = etcd;
  return { bins };
}

const found = kubeBinaries();
const skipReason = !isRoot ? ROOT_REASON : "problem" in found ? found.problem : undefined;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `fn` until it returns a value other than undefined, or fails saying `what`. */
async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined>,
  timeoutMs = 120_000,
  everyMs = 500,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    await sleep(everyMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${last}` : ""}`);
}

async function sh(script: string): Promise<string> {
  const out = await new Deno.Command("sh", { args: ["-ec", script], stderr: "piped" }).output();
  const dec = new TextDecoder();
  if (!out.success) throw new Error(`sh failed: ${script}\n${dec.decode(out.stderr)}`);
  return dec.decode(out.stdout);
}

/** A CA and certificates signed by it, made with openssl (EC P-256, valid two days). */
async function makePki(pki: string): Promise<void> {
  await Deno.mkdir(pki, { recursive: true });
  const leaf = (name: string, subj: string, san = "") => `
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
      -keyout ${name}.key -out ${name}.csr -subj '${subj}' 2>/dev/null
    printf '%s\\n' 'basicConstraints=CA:FALSE' 'keyUsage=critical,digitalSignature,keyEncipherment' \
      'extendedKeyUsage=serverAuth,clientAuth' ${san ? `'subjectAltName=${san}'` : ""} > ${name}.ext
    openssl x509 -req -in ${name}.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
      -extfile ${name}.ext -out ${name}.crt 2>/dev/null`;
  await sh(`cd ${pki}
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
      -keyout ca.key -out ca.crt -subj '/CN=k8sc-e2e-ca' \
      -addext 'basicConstraints=critical,CA:TRUE' -addext 'keyUsage=critical,keyCertSign,cRLSign' 2>/dev/null
    ${
    leaf(
      "apiserver",
      "/CN=kube-apiserver",
      "IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default.svc",
    )
  }
    ${leaf("admin", "/O=system:masters/CN=kubernetes-admin")}
    ${leaf("apiserver-kubelet-client", "/O=system:masters/CN=kube-apiserver-kubelet-client")}
    ${leaf("kubelet", `/O=system:nodes/CN=system:node:${NODE}`)}
    ${leaf("kubelet-serving", `/CN=${NODE}`, `IP:127.0.0.1,DNS:${NODE}`)}
    openssl genrsa -out sa.key 2048 2>/dev/null`);
}

function kubeconfig(server: string, pki: string, user: string): string {
  return JSON.stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: "e2e", cluster: { server, "certificate-authority": `${pki}/ca.crt` } }],
    users: [{
      name: user,
      user: { "client-certificate": `${pki}/${user}.crt`, "client-key": `${pki}/${user}.key` },
    }],
    contexts: [{ name: "e2e", context: { cluster: "e2e", user } }],
    "current-context": "e2e",
  });
}

interface Proc {
  name: string;
  child: Deno.ChildProcess;
  log: string;
}

describe.skipIf(skipReason !== undefined, skipReason ?? "")("a kubelet on the host", () => {
  const bins = "bins" in found ? found.bins : {};
  let registry: Registry;
  let d: TestDaemon;
  let dir: string;
  let reg: string;
  let adminKubeconfig: string;
  let cgroupRoot: string;
  let kubeletPort: number;
  let configToml: string;
  let kubeletArgs: string[];
  let kubelet: Proc;
  const procs: Proc[] = [];

  function spawn(name: string, cmd: string, args: string[]): Proc {
    const log = `${dir}/logs/${name}.log`;
    const f = Deno.openSync(log, { write: true, create: true, append: true });
    const child = new Deno.Command(cmd, {
      args,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const sink = f.writable.getWriter();
    const pump = async (s: ReadableStream<Uint8Array>) => {
      for await (const c of s) await sink.write(c);
    };
    Promise.all([pump(child.stdout), pump(child.stderr)]).finally(() =>
      sink.close().catch(() => {})
    );
    const p = { name, child, log };
    procs.push(p);
    return p;
  }

  async function stopAll(): Promise<void> {
    for (const p of procs.reverse()) {
      try {
        p.child.kill("SIGTERM");
      } catch { /* gone */ }
      const t = setTimeout(() => {
        try {
          p.child.kill("SIGKILL");
        } catch { /* gone */ }
      }, 10_000);
      await p.child.status;
      clearTimeout(t);
    }
  }

  /** kubectl as the cluster admin; rejects on a non-zero exit unless `allowFail`. */
  async function kubectl(
    args: string[],
    o: { stdin?: string; allowFail?: boolean } = {},
  ): Promise<{ code: number; stdout: string; stderr: string }> {
    const child = new Deno.Command(bins.kubectl, {
      args: ["--kubeconfig", adminKubeconfig, ...args],
      stdin: o.stdin === undefined ? "null" : "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    if (o.stdin !== undefined) {
      const w = child.stdin.getWriter();
      await w.write(new TextEncoder().encode(o.stdin));
      await w.close();
    }
    const out = await child.output();
    const dec = new TextDecoder();
    const r = { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
    if (r.code !== 0 && !o.allowFail) {
      throw new Error(`kubectl ${args.join(" ")} exited ${r.code}: ${r.stderr}`);
    }
    return r;
  }

  const apply = (obj: unknown) => kubectl(["apply", "-f", "-"], { stdin: JSON.stringify(obj) });

  // deno-lint-ignore no-explicit-any
  const getJson = async (args: string[]): Promise<any> =>
    JSON.parse((await kubectl(["get", ...args, "-o", "json"])).stdout);

  // deno-lint-ignore no-explicit-any
  function simplePod(name: string, spec: Record<string, any>) {
    return {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name, labels: { e2e: "kube-host" } },
      spec: { terminationGracePeriodSeconds: 5, ...spec },
    };
  }

  const busybox = () => `${reg}/busybox:latest`;

  // deno-lint-ignore no-explicit-any
  async function waitPod(name: string, ok: (p: any) => boolean, what: string, ms = 120_000) {
    // deno-lint-ignore no-explicit-any
    let last: any;
    try {
      return await waitFor(
        `pod ${name} ${what}`,
        async () => {
          last = await getJson(["pod", name]);
          return ok(last) ? last : undefined;
        },
        ms,
        1000,
      );
    } catch (e) {
      throw new Error(`${e}\nlast status: ${JSON.stringify(last?.status)}`);
    }
  }

  beforeAll(async () => {
    dir = await Deno.makeTempDir({ prefix: "k8sc-kube-e2e-" });
    await Deno.chmod(dir, 0o711);
    await Deno.mkdir(`${dir}/logs`);
    registry = await startRegistry();
    reg = registry.address;
    await pushFixtures(reg, ["busybox", "pause"]);

    // The runtime: its own CNI bridge and the test registry's pause image.
    await writeCniConf(dir, { name: "kube-e2e", bridge: BRIDGE, subnet: `${SUBNET_PREFIX}0/24` });
    configToml = await writeCriConfig(dir, { sandboxImage: `${reg}/pause:latest` });
    await Deno.mkdir(`${dir}/k8sc`);
    d = await startTestDaemon({ args: ["--config", configToml], dir: `${dir}/k8sc` });

    const pki = `${dir}/pki`;
    await makePki(pki);
    const etcdPort = freePort(), peerPort = freePort(), apiPort = freePort();
    kubeletPort = freePort();
    const healthzPort = freePort();
    const server = `https://127.0.0.1:${apiPort}`;
    adminKubeconfig = `${dir}/admin.kubeconfig`;
    await Deno.writeTextFile(adminKubeconfig, kubeconfig(server, pki, "admin"));
    await Deno.writeTextFile(`${dir}/kubelet.kubeconfig`, kubeconfig(server, pki, "kubelet"));

    spawn("etcd", bins.etcd, [
      "--name=e2e",
      `--data-dir=${dir}/etcd`,
      `--listen-client-urls=http://127.0.0.1:${etcdPort}`,
      `--advertise-client-urls=http://127.0.0.1:${etcdPort}`,
      `--listen-peer-urls=http://127.0.0.1:${peerPort}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${peerPort}`,
      `--initial-cluster=e2e=http://127.0.0.1:${peerPort}`,
    ]);
    spawn("kube-apiserver", bins["kube-apiserver"], [
      `--etcd-servers=http://127.0.0.1:${etcdPort}`,
      "--bind-address=127.0.0.1",
      "--advertise-address=127.0.0.1",
      `--secure-port=${apiPort}`,
      `--cert-dir=${dir}/apiserver`,
      `--tls-cert-file=${pki}/apiserver.crt`,
      `--tls-private-key-file=${pki}/apiserver.key`,
      `--client-ca-file=${pki}/ca.crt`,
      `--kubelet-client-certificate=${pki}/apiserver-kubelet-client.crt`,
      `--kubelet-client-key=${pki}/apiserver-kubelet-client.key`,
      "--kubelet-preferred-address-types=Hostname",
      "--service-account-issuer=https://kubernetes.default.svc",
      `--service-account-key-file=${pki}/sa.key`,
      `--service-account-signing-key-file=${pki}/sa.key`,
      "--service-cluster-ip-range=10.223.91.0/24",
      "--authorization-mode=Node,RBAC",
      "--enable-admission-plugins=NodeRestriction",
      "--allow-privileged=true",
      // The "kubernetes" Service's endpoint would be 127.0.0.1, which Endpoints refuse.
      "--endpoint-reconciler-type=none",
      "--profiling=false",
    ]);
    await waitFor(
      "kube-apiserver /readyz",
      async () => {
        const r = await kubectl(["get", "--raw", "/readyz"], { allowFail: true });
        return r.code === 0 ? true : undefined;
      },
      120_000,
      1000,
    );

    spawn("kube-controller-manager", bins["kube-controller-manager"], [
      `--kubeconfig=${adminKubeconfig}`,
      "--bind-address=127.0.0.1",
      "--secure-port=0",
      "--leader-elect=false",
      `--service-account-private-key-file=${pki}/sa.key`,
      `--root-ca-file=${pki}/ca.crt`,
      "--use-service-account-credentials=false",
    ]);
    spawn("kube-scheduler", bins["kube-scheduler"], [
      `--kubeconfig=${adminKubeconfig}`,
      "--bind-address=127.0.0.1",
      "--secure-port=0",
      "--leader-elect=false",
    ]);

    // The kubelet: everything it writes under the temp dir, its kubepods tree under a cgroup
    // root of its own, its servers on 127.0.0.1.
    cgroupRoot = `/k8sc-kube-e2e-${Date.now().toString(36)}`;
    // The kubelet wants its cgroup root to exist in every hierarchy (a v1 cpuset needs cpus and
    // mems before anything can join it).
    await sh(`if [ -f /sys/fs/cgroup/cgroup.controllers ]; then mkdir -p /sys/fs/cgroup${cgroupRoot}
      else
        for c in /sys/fs/cgroup/*/; do
          case "$c" in */unified/) continue;; esac
          mkdir -p "$c${cgroupRoot}"
        done
        cs=/sys/fs/cgroup/cpuset
        cat $cs/cpuset.cpus > $cs${cgroupRoot}/cpuset.cpus
        cat $cs/cpuset.mems > $cs${cgroupRoot}/cpuset.mems
      fi`);
    const oomScoreAdj = Number((await Deno.readTextFile("/proc/self/oom_score_adj")).trim());
    await Deno.writeTextFile(`${dir}/resolv.conf`, "nameserver 127.0.0.1\n");
    await Deno.writeTextFile(
      `${dir}/kubelet.yaml`,
      JSON.stringify({
        apiVersion: "kubelet.config.k8s.io/v1beta1",
        kind: "KubeletConfiguration",
        address: "127.0.0.1",
        port: kubeletPort,
        readOnlyPort: 0,
        healthzBindAddress: "127.0.0.1",
        healthzPort,
        authentication: {
          anonymous: { enabled: false },
          webhook: { enabled: false },
          x509: { clientCAFile: `${pki}/ca.crt` },
        },
        authorization: { mode: "AlwaysAllow" },
        tlsCertFile: `${pki}/kubelet-serving.crt`,
        tlsPrivateKeyFile: `${pki}/kubelet-serving.key`,
        cgroupDriver: "cgroupfs",
        cgroupsPerQOS: true,
        cgroupRoot,
        enforceNodeAllocatable: ["pods"],
        failSwapOn: false,
        makeIPTablesUtilChains: false,
        oomScoreAdj,
        resolvConf: `${dir}/resolv.conf`,
        podLogsDir: `${dir}/pod-logs`,
        containerRuntimeEndpoint: `unix://${d.socket}`,
        imageServiceEndpoint: `unix://${d.socket}`,
        // This box's disk and memory are shared: do not evict test pods for others' use.
        evictionHard: {
          "memory.available": "100Mi",
          "nodefs.available": "1%",
          "imagefs.available": "1%",
        },
        imageGCHighThresholdPercent: 100,
        imageGCLowThresholdPercent: 99,
        serializeImagePulls: false,
        rotateCertificates: false,
      }),
    );
    kubeletArgs = [
      `--config=${dir}/kubelet.yaml`,
      `--kubeconfig=${dir}/kubelet.kubeconfig`,
      `--root-dir=${dir}/kubelet`,
      `--cert-dir=${dir}/kubelet/pki`,
      `--volume-plugin-dir=${dir}/kubelet/volume-plugins`,
      `--hostname-override=${NODE}`,
      `--pod-infra-container-image=${reg}/pause:latest`,
      "--v=2",
    ];
    kubelet = spawn("kubelet", bins.kubelet, kubeletArgs);
  });

  afterAll(async () => {
    // Pods first, while the kubelet still runs, so it stops them through the runtime.
    if (adminKubeconfig) {
      await kubectl(["delete", "deployment,pod,configmap,secret", "--all", "--wait=false"], {
        allowFail: true,
      }).catch(() => {});
    }
    await stopAll();
    await d?.stop();
    if (d) await Deno.writeTextFile(`${dir}/logs/k8scontainerd.log`, d.log());
    await cleanUpAfterDaemon(d, BRIDGE);
    // The kubelet's mounts (secret/configMap tmpfs) and its kubepods cgroups (an emptied cgroup
    // can refuse rmdir for a moment: a few tries).
    await sh(`grep -o ' ${dir}/[^ ]*' /proc/self/mountinfo | sort -r | xargs -r umount -l; true`)
      .catch(() => {});
    for (let i = 0; cgroupRoot && i < 20; i++) {
      const left = await sh(`for c in /sys/fs/cgroup/*/; do
          [ -d "$c${cgroupRoot}" ] || continue
          find "$c${cgroupRoot}" -depth -type d -exec rmdir {} + 2>/dev/null || true
          [ -d "$c${cgroupRoot}" ] && echo "$c${cgroupRoot}"
        done; true`).catch((e) => `${e}`);
      if (left === "") break;
      if (i === 19) console.log(`left behind: ${left}`);
      await sleep(500);
    }
    await registry?.stop();
    if (Deno.env.get("K8SC_KUBE_KEEP")) console.log(`kept ${dir}`);
    else await Deno.remove(dir, { recursive: true }).catch(() => {});
  });

  it("the node registers and becomes Ready", async () => {
    await waitFor(
      "node Ready",
      async () => {
        const r = await kubectl([
          "get",
          "node",
          NODE,
          "-o",
          `jsonpath={.status.conditions[?(@.type=="Ready")].status}`,
        ], { allowFail: true });
        return r.stdout.trim() === "True" ? true : undefined;
      },
      180_000,
      1000,
    );
    const node = await getJson(["node", NODE]);
    expect(node.status.nodeInfo.containerRuntimeVersion).toMatch(/^k8scontainerd:\/\//);
    expect(node.status.addresses).toContainEqual({ type: "Hostname", address: NODE });
  });

  it("a Deployment's pods run with pod IPs on the runtime's bridge", async () => {
    await apply({
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: "web" },
      spec: {
        replicas: 2,
        selector: { matchLabels: { app: "web" } },
        template: {
          metadata: { labels: { app: "web" } },
          spec: {
            terminationGracePeriodSeconds: 5,
            containers: [{
              name: "web",
              image: busybox(),
              command: ["sh", "-c", "echo started on $(hostname); exec sleep 3600"],
            }],
          },
        },
      },
    });
    await kubectl(["rollout", "status", "deployment/web", "--timeout=180s"]);
    const pods = await getJson(["pods", "-l", "app=web"]);
    expect(pods.items.length).toBe(2);
    for (const p of pods.items) {
      expect(p.status.phase).toBe("Running");
      expect(p.status.podIP).toMatch(new RegExp(`^${SUBNET_PREFIX.replaceAll(".", "\\.")}\\d+$`));
      const ping = await new Deno.Command("busybox", {
        args: ["ping", "-c1", "-W2", p.status.podIP],
        stdout: "null",
      }).output();
      expect(ping.success).toBe(true);
    }
  });

  it("kubectl logs shows the container's output", async () => {
    const pods = await getJson(["pods", "-l", "app=web"]);
    const name = pods.items[0].metadata.name;
    const out = await kubectl(["logs", name]);
    expect(out.stdout).toBe(`started on ${name}\n`);
  });

  it("kubectl exec feeds stdin and returns the exit code", async () => {
    const pods = await getJson(["pods", "-l", "app=web"]);
    const name = pods.items[0].metadata.name;
    const r = await kubectl(["exec", "-i", name, "--", "sh", "-c", "tr a-z A-Z; exit 3"], {
      stdin: "hello kubelet\n",
      allowFail: true,
    });
    expect(r.stdout).toBe("HELLO KUBELET\n");
    expect(r.code).toBe(3);
    const ok = await kubectl(["exec", name, "--", "hostname"]);
    expect(ok.stdout).toBe(`${name}\n`);
  });

  it("init containers run to completion, in order, before the app", async () => {
    await apply(simplePod("init", {
      volumes: [{ name: "work", emptyDir: {} }],
      initContainers: [
        {
          name: "one",
          image: busybox(),
          command: ["sh", "-c", "echo one > /work/order"],
          volumeMounts: [{ name: "work", mountPath: "/work" }],
        },
        {
          name: "two",
          image: busybox(),
          command: ["sh", "-c", "echo two >> /work/order"],
          volumeMounts: [{ name: "work", mountPath: "/work" }],
        },
      ],
      containers: [{
        name: "app",
        image: busybox(),
        command: ["sh", "-c", "cat /work/order; exec sleep 3600"],
        volumeMounts: [{ name: "work", mountPath: "/work" }],
      }],
    }));
    const p = await waitPod("init", (p) => p.status.phase === "Running", "Running");
    expect(
      p.status.initContainerStatuses.map((s: { state: { terminated?: { exitCode: number } } }) =>
        s.state.terminated?.exitCode
      ),
    ).toEqual([0, 0]);
    await waitFor("init logs", async () => {
      const out = await kubectl(["logs", "init", "-c", "app"]);
      return out.stdout === "one\ntwo\n" ? true : undefined;
    }, 30_000);
  });

  it("a failing liveness exec probe restarts the container", async () => {
    await apply(simplePod("live", {
      containers: [{
        name: "app",
        image: busybox(),
        command: [
          "sh",
          "-c",
          "echo run $(cat /proc/uptime); touch /tmp/healthy; sleep 4; rm /tmp/healthy; exec sleep 3600",
        ],
        livenessProbe: {
          exec: { command: ["cat", "/tmp/healthy"] },
          initialDelaySeconds: 1,
          periodSeconds: 2,
          failureThreshold: 1,
          timeoutSeconds: 2,
        },
      }],
    }));
    const p = await waitPod(
      "live",
      (p) => (p.status.containerStatuses?.[0]?.restartCount ?? 0) >= 1,
      "restarted by its liveness probe",
      150_000,
    );
    expect(p.status.containerStatuses[0].lastState.terminated).toBeDefined();
    const events = await kubectl([
      "get",
      "events",
      "--field-selector",
      "involvedObject.name=live",
      "-o",
      "jsonpath={.items[*].reason}",
    ]);
    expect(events.stdout).toMatch(/Unhealthy/);
    expect(events.stdout).toMatch(/Killing/);
  });

  it("kubectl logs --previous shows the restarted container's earlier run", async () => {
    await waitPod(
      "live",
      (p) => p.status.containerStatuses?.[0]?.state?.running !== undefined,
      "running again",
      60_000,
    );
    const prev = await kubectl(["logs", "live", "--previous"]);
    const now = await kubectl(["logs", "live"]);
    expect(prev.stdout).toMatch(/^run \d/);
    expect(now.stdout).toMatch(/^run \d/);
    expect(prev.stdout).not.toBe(now.stdout);
    await kubectl(["delete", "pod", "live", "--wait=false"]);
  });

  it("emptyDir, configMap and secret volumes", async () => {
    await apply({
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "cfg" },
      data: { greeting: "hello from a configMap" },
    });
    await apply({
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: "sec" },
      stringData: { password: "s3cret" },
    });
    await apply(simplePod("vols", {
      restartPolicy: "Never",
      volumes: [
        { name: "scratch", emptyDir: {} },
        { name: "mem", emptyDir: { medium: "Memory" } },
        { name: "cfg", configMap: { name: "cfg" } },
        { name: "sec", secret: { secretName: "sec", defaultMode: 0o400 } },
      ],
      containers: [{
        name: "app",
        image: busybox(),
        command: [
          "sh",
          "-c",
          "cat /cfg/greeting; echo; cat /sec/password; echo; stat -Lc %a /sec/password; " +
          "echo scratch > /scratch/f && cat /scratch/f; grep -c ' /mem tmpfs' /proc/mounts; " +
          "test -s /var/run/secrets/kubernetes.io/serviceaccount/token && echo token",
        ],
        volumeMounts: [
          { name: "scratch", mountPath: "/scratch" },
          { name: "mem", mountPath: "/mem" },
          { name: "cfg", mountPath: "/cfg" },
          { name: "sec", mountPath: "/sec" },
        ],
      }],
    }));
    const p = await waitPod(
      "vols",
      (p) => ["Succeeded", "Failed"].includes(p.status.phase),
      "done",
    );
    const logs = (await kubectl(["logs", "vols"])).stdout;
    expect(p.status.phase).toBe("Succeeded");
    expect(logs).toBe("hello from a configMap\ns3cret\n400\nscratch\n1\ntoken\n");
  });

  it("kubectl delete pod stops it gracefully (SIGTERM, then gone)", async () => {
    const out = `${dir}/graceful`;
    await Deno.mkdir(out);
    await apply(simplePod("graceful", {
      terminationGracePeriodSeconds: 30,
      volumes: [{ name: "out", hostPath: { path: out } }],
      containers: [{
        name: "app",
        image: busybox(),
        command: [
          "sh",
          "-c",
          "trap 'echo TERM > /out/signal; exit 0' TERM; echo up > /out/signal; " +
          "while true; do sleep 1; done",
        ],
        volumeMounts: [{ name: "out", mountPath: "/out" }],
      }],
    }));
    await waitPod("graceful", (p) => p.status.phase === "Running", "Running");
    await waitFor(
      "the container started",
      async () =>
        (await Deno.readTextFile(`${out}/signal`).catch(() => "")) === "up\n" ? true : undefined,
      30_000,
    );
    const t0 = Date.now();
    await kubectl(["delete", "pod", "graceful", "--wait=true", "--timeout=60s"]);
    const took = Date.now() - t0;
    expect(await Deno.readTextFile(`${out}/signal`)).toBe("TERM\n");
    // Well under the 30 s grace period: the trap ran, nobody waited for SIGKILL.
    expect(took).toBeLessThan(20_000);
  });

  it("kubectl port-forward reaches a server in the pod", async () => {
    await apply(simplePod("pf", {
      containers: [{
        name: "web",
        image: busybox(),
        command: [
          "sh",
          "-c",
          "mkdir /www; echo hello through port-forward > /www/index.html; exec httpd -f -p 8080 -h /www",
        ],
        ports: [{ containerPort: 8080 }],
      }],
    }));
    await waitPod("pf", (p) => p.status.phase === "Running", "Running");
    const child = new Deno.Command(bins.kubectl, {
      args: [
        "--kubeconfig",
        adminKubeconfig,
        "port-forward",
        "--address",
        "127.0.0.1",
        "pod/pf",
        ":8080",
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    try {
      const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
      let seen = "";
      const port = await waitFor(
        "kubectl port-forward to listen",
        async () => {
          const { value, done } = await reader.read();
          if (done) throw new Error(`port-forward exited: ${seen}`);
          seen += value;
          return seen.match(/Forwarding from 127\.0\.0\.1:(\d+) -> 8080/)?.[1];
        },
        30_000,
        0,
      );
      // A few tries: the server may still be binding.
      const body = await waitFor(
        "an answer through the forward",
        async () => {
          const res = await fetch(`http://127.0.0.1:${port}/`, {
            signal: AbortSignal.timeout(5000),
          });
          return res.ok ? await res.text() : undefined;
        },
        20_000,
        500,
      );
      expect(body).toBe("hello through port-forward\n");
      reader.releaseLock();
    } finally {
      child.kill("SIGTERM");
      await child.status;
      await child.stdout.cancel().catch(() => {});
      await child.stderr.cancel().catch(() => {});
    }
    await kubectl(["delete", "pod", "pf", "--wait=false"]);
  });

  it("resources and security context: memory limit in the pod's cgroup, runAsUser, OOMKilled", async () => {
    await apply(simplePod("limits", {
      containers: [{
        name: "app",
        image: busybox(),
        command: ["sh", "-c", "exec sleep 3600"],
        resources: {
          limits: { memory: "64Mi", cpu: "250m" },
          requests: { memory: "64Mi", cpu: "250m" },
        },
        securityContext: { runAsUser: 1234, runAsGroup: 2345, allowPrivilegeEscalation: false },
      }],
    }));
    const p = await waitPod("limits", (p) => p.status.phase === "Running", "Running");
    expect(p.status.qosClass).toBe("Guaranteed");
    const ids = await kubectl(["exec", "limits", "--", "id"]);
    expect(ids.stdout).toMatch(/^uid=1234 gid=2345/);
    const v2 = (await kubectl(["exec", "limits", "--", "cat", "/sys/fs/cgroup/memory.max"], {
      allowFail: true,
    })).stdout.trim();
    const limit = v2 || (await kubectl([
      "exec",
      "limits",
      "--",
      "cat",
      "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ])).stdout.trim();
    expect(limit).toBe(String(64 << 20));

    await apply(simplePod("oom", {
      containers: [{
        name: "hog",
        image: busybox(),
        // dd, the container's only process, fills one 100 MiB buffer: far over the limit.
        command: ["dd", "if=/dev/zero", "of=/dev/null", "bs=100M", "count=1"],
        resources: { limits: { memory: "32Mi" } },
      }],
    }));
    const o = await waitPod(
      "oom",
      (p) => {
        const s = p.status.containerStatuses?.[0];
        return s?.lastState?.terminated || s?.state?.terminated;
      },
      "OOM-killed",
      90_000,
    );
    const s = o.status.containerStatuses[0];
    const t = s.lastState.terminated ?? s.state.terminated;
    expect(t.reason).toBe("OOMKilled");
    expect(t.exitCode).toBe(137);
  });

  it("the kubelet's stats summary has the node, the pods and their containers", async () => {
    // The kubelet combines the runtime's ListPodSandboxStats / ListContainerStats with cAdvisor.
    // deno-lint-ignore no-explicit-any
    const summary: any = await waitFor(
      "stats for the limits pod",
      async () => {
        // Straight to the kubelet: the apiserver's node proxy refuses a loopback node address.
        const r = await kubectl([
          "--server",
          `https://127.0.0.1:${kubeletPort}`,
          "get",
          "--raw",
          "/stats/summary",
        ]);
        const j = JSON.parse(r.stdout);
        // deno-lint-ignore no-explicit-any
        const pod = j.pods?.find((p: any) => p.podRef.name === "limits");
        return pod?.containers?.[0]?.memory?.workingSetBytes > 0 ? j : undefined;
      },
      90_000,
      3000,
    );
    expect(summary.node.nodeName).toBe(NODE);
    expect(summary.node.memory.workingSetBytes).toBeGreaterThan(0);
    // deno-lint-ignore no-explicit-any
    const pod = summary.pods.find((p: any) => p.podRef.name === "limits");
    expect(pod.containers[0].name).toBe("app");
    expect(pod.containers[0].cpu.usageCoreNanoSeconds).toBeGreaterThan(0);
    expect(pod.containers[0].rootfs).toBeDefined();
    const node = await getJson(["node", NODE]);
    // deno-lint-ignore no-explicit-any
    const names = node.status.images.flatMap((i: any) => i.names);
    expect(names).toContain(busybox());
    // A figure for the README: the daemon's memory with this many pods under a kubelet.
    const rss = (await Deno.readTextFile(`/proc/${d.process!.pid}/status`)).match(/VmRSS:\s+(\d+)/)
      ?.[1];
    console.log(
      `  k8scontainerd RSS ${Math.round(Number(rss) / 1024)} MB with ${summary.pods.length} pods`,
    );
  });

  /** The web Deployment's containers: pod name → container id and restart count. */
  async function webContainers(): Promise<Record<string, string>> {
    const pods = await getJson(["pods", "-l", "app=web"]);
    return Object.fromEntries(
      // deno-lint-ignore no-explicit-any
      pods.items.map((p: any) => [
        p.metadata.name,
        `${p.status.containerStatuses[0].containerID} restarts=${
          p.status.containerStatuses[0].restartCount
        } running=${p.status.containerStatuses[0].state.running !== undefined}`,
      ]),
    );
  }

  it("restarting k8scontainerd under the kubelet leaves the pods running, untouched", async () => {
    const before = await webContainers();
    expect(Object.values(before).every((c) => c.endsWith("running=true"))).toBe(true);
    expect(await d.stop()).toBe(0);
    d = await startTestDaemon({ args: ["--config", configToml], dir: `${dir}/k8sc` });
    // A few PLEG relists (1 s each) and a node status update (10 s) against the new daemon.
    await sleep(12_000);
    expect(await webContainers()).toEqual(before);
    const name = Object.keys(before)[0];
    expect((await kubectl(["exec", name, "--", "echo", "still here"])).stdout).toBe("still here\n");
    const ready = await kubectl([
      "get",
      "node",
      NODE,
      "-o",
      `jsonpath={.status.conditions[?(@.type=="Ready")].status}`,
    ]);
    expect(ready.stdout).toBe("True");
  });

  it("restarting the kubelet: it adopts the running pods without restarting them", async () => {
    const before = await webContainers();
    kubelet.child.kill("SIGTERM");
    await kubelet.child.status;
    kubelet = spawn("kubelet", bins.kubelet, kubeletArgs);
    await waitFor(
      "the kubelet's healthz",
      async () => {
        const r = await kubectl([
          "--server",
          `https://127.0.0.1:${kubeletPort}`,
          "get",
          "--raw",
          "/healthz",
        ], {
          allowFail: true,
        });
        return r.stdout === "ok" ? true : undefined;
      },
      60_000,
      1000,
    );
    await sleep(12_000);
    expect(await webContainers()).toEqual(before);
    const name = Object.keys(before)[0];
    expect((await kubectl(["logs", name])).stdout).toBe(`started on ${name}\n`);
  });

  it("kubectl cp copies a file into a container and back", async () => {
    const name = Object.keys(await webContainers())[0];
    const src = `${dir}/cp-in.txt`, back = `${dir}/cp-back.txt`;
    const text = "copied by kubectl cp\n".repeat(100);
    await Deno.writeTextFile(src, text);
    await kubectl(["cp", src, `${name}:/tmp/cp.txt`]);
    expect((await kubectl(["exec", name, "--", "md5sum", "/tmp/cp.txt"])).stdout.split(" ")[0])
      .toBe((await sh(`md5sum ${src}`)).split(" ")[0]);
    await kubectl(["cp", `${name}:/tmp/cp.txt`, back]);
    expect(await Deno.readTextFile(back)).toBe(text);
  });

  it("probes over HTTP and TCP, postStart and preStop hooks", async () => {
    const out = `${dir}/hooks`;
    await Deno.mkdir(out);
    await apply(simplePod("probed", {
      volumes: [{ name: "out", hostPath: { path: out } }],
      containers: [{
        name: "web",
        image: busybox(),
        command: [
          "sh",
          "-c",
          "mkdir -p /www; echo ready > /www/index.html; exec httpd -f -p 8080 -h /www",
        ],
        volumeMounts: [{ name: "out", mountPath: "/out" }],
        // The kubelet itself connects to the pod IP (on the test's bridge).
        readinessProbe: { httpGet: { path: "/", port: 8080 }, periodSeconds: 2 },
        livenessProbe: { tcpSocket: { port: 8080 }, periodSeconds: 2 },
        startupProbe: { exec: { command: ["test", "-e", "/www/index.html"] }, periodSeconds: 1 },
        lifecycle: {
          postStart: { exec: { command: ["sh", "-c", "echo poststart > /out/poststart"] } },
          preStop: { exec: { command: ["sh", "-c", "echo prestop > /out/prestop"] } },
        },
      }],
    }));
    await waitPod("probed", (p) => p.status.containerStatuses?.[0]?.ready === true, "Ready");
    expect(await Deno.readTextFile(`${out}/poststart`)).toBe("poststart\n");
    await sleep(6_000);
    const p = await getJson(["pod", "probed"]);
    expect(p.status.containerStatuses[0].restartCount).toBe(0);
    expect(p.status.containerStatuses[0].ready).toBe(true);
    await kubectl(["delete", "pod", "probed", "--wait=true", "--timeout=60s"]);
    expect(await Deno.readTextFile(`${out}/prestop`)).toBe("prestop\n");
  });

  it("a finished container: exit code, termination message, downward API env", async () => {
    await apply(simplePod("done", {
      restartPolicy: "Never",
      containers: [{
        name: "app",
        image: busybox(),
        command: [
          "sh",
          "-c",
          "echo $POD_NAME $POD_IP $MEM_LIMIT; echo all done > /dev/termination-log; exit 7",
        ],
        env: [
          { name: "POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
          { name: "POD_IP", valueFrom: { fieldRef: { fieldPath: "status.podIP" } } },
          {
            name: "MEM_LIMIT",
            valueFrom: { resourceFieldRef: { resource: "limits.memory", divisor: "1Mi" } },
          },
        ],
        resources: { limits: { memory: "48Mi" } },
      }],
    }));
    const p = await waitPod("done", (p) => p.status.phase === "Failed", "Failed");
    const t = p.status.containerStatuses[0].state.terminated;
    expect(t.exitCode).toBe(7);
    expect(t.reason).toBe("Error");
    expect(t.message).toBe("all done\n");
    const logs = (await kubectl(["logs", "done"])).stdout;
    expect(logs).toBe(`done ${p.status.podIP} 48\n`);
  });

  it("an image that does not exist: ErrImagePull / ImagePullBackOff with the registry's reason", async () => {
    await apply(simplePod("missing", {
      containers: [{ name: "app", image: `${reg}/does-not-exist:v0`, command: ["true"] }],
    }));
    const p = await waitPod(
      "missing",
      (p) => {
        const w = p.status.containerStatuses?.[0]?.state?.waiting;
        return w && ["ErrImagePull", "ImagePullBackOff"].includes(w.reason);
      },
      "failing to pull",
      90_000,
    );
    const w = p.status.containerStatuses[0].state.waiting;
    console.log(`  ${w.reason}: ${w.message}`);
    expect(w.message).toContain("does-not-exist");
    expect(w.message).toMatch(/not found|unknown/i);
    await kubectl(["delete", "pod", "missing", "--wait=true", "--timeout=60s"]);
  });

  it("once the pods are deleted nothing is left: no sandboxes, netns, mounts or conmon", async () => {
    await kubectl(["delete", "deployment,pod", "--all", "--wait=true", "--timeout=120s"]);
    const rt = new RuntimeServiceClient(`unix://${d.socket}`, grpc.credentials.createInsecure());
    try {
      // The kubelet stops sandboxes when a pod goes and removes them in its next GC (once a
      // minute).
      await waitFor(
        "the kubelet to remove every sandbox",
        async () => {
          const r = await call(d.socket, "k8s.io", rt.listPodSandbox.bind(rt), {
            filter: undefined,
          });
          return r.items.length === 0 ? true : undefined;
        },
        150_000,
        2000,
      );
      const cs = await call(d.socket, "k8s.io", rt.listContainers.bind(rt), { filter: undefined });
      expect(cs.containers).toEqual([]);
    } finally {
      rt.close();
    }
    const left = await sh(`
      ps -eo args | grep '[c]onmon.*${d.dir}' || true
      grep -o ' ${d.dir}/[^ ]*' /proc/self/mountinfo || true
      grep -rhoE '/run/netns/k8sc-[0-9a-f]+' ${d.dir}/state/cni 2>/dev/null | sort -u |
        while read -r ns; do [ -e "$ns" ] && echo "$ns"; done; true`);
    expect(left).toBe("");
  });
});
