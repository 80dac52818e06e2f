/**
 * A one-node Kubernetes cluster on this host: etcd, kube-apiserver, kube-controller-manager,
 * kube-scheduler and a kubelet pointed at a CRI socket, every server on 127.0.0.1 with a free
 * port and every file under one dir (certificates, kubeconfigs, etcd data, the kubelet's
 * `--root-dir`, pod logs, each component's log in `<dir>/logs`). The kubelet runs with the
 * cgroupfs driver under a cgroup root of its own, made in every hierarchy and removed by
 * {@link KubeCluster.cleanup}.
 *
 * Authorization is Node,RBAC (the kubelet authenticates as system:node:<name>); the components
 * and kubectl use a system:masters client certificate; the kubelet's own API authorizes with
 * AlwaysAllow after x509 authentication against the cluster's CA (openssl, EC P-256).
 *
 * @example
 * ```ts
 * import { kubeBinaries, startKubeCluster } from "./kube_cluster.ts";
 * const found = kubeBinaries();
 * if ("bins" in found) {
 *   const c = await startKubeCluster({
 *     bins: found.bins,
 *     dir: "/tmp/cluster",
 *     runtimeSocket: "/run/k8scontainerd/k8scontainerd.sock",
 *     podInfraImage: "127.0.0.1:5000/pause:latest",
 *   });
 *   await c.waitNodeReady();
 *   console.log((await c.kubectl(["get", "nodes"])).stdout);
 *   await c.stop();
 *   await c.cleanup();
 * }
 * ```
 */
import { freePort } from "../scripts/fixtures/registry.ts";

/**
 * The node's name and Hostname address: the kubelet refuses a loopback --node-ip ("nodeIP
 * can't be loopback address") and then reports no address at all, so the apiserver reaches it
 * by Hostname (--kubelet-preferred-address-types=Hostname), which resolves to 127.0.0.1.
 */
export const NODE = "localhost";

/** The binaries a cluster needs from `K8SC_KUBE_DIR` (etcd there or on PATH). */
export const KUBE_BINS = [
  "kubelet",
  "kube-apiserver",
  "kube-controller-manager",
  "kube-scheduler",
  "kubectl",
] as const;

/** Paths of the cluster's binaries, by name (`etcd` and each of {@link KUBE_BINS}). */
export type KubeBins = Record<string, string>;

function which(name: string): string | undefined {
  for (const d of (Deno.env.get("PATH") ?? "").split(":")) {
    try {
      if (Deno.statSync(`${d}/${name}`).isFile) return `${d}/${name}`;
    } catch { /* not here */ }
  }
  return undefined;
}

/**
 * Where the binaries are (from `K8SC_KUBE_DIR`), or why a cluster cannot run: the reason a
 * suite or benchmark gives when it skips.
 *
 * @example
 * ```ts
 * const found = kubeBinaries();
 * if ("problem" in found) console.log(`skipped: ${found.problem}`);
 * ```
 */
export function kubeBinaries(): { bins: KubeBins } | { problem: string } {
  const dir = Deno.env.get("K8SC_KUBE_DIR");
  if (!dir) {
    return {
      problem: "set K8SC_KUBE_DIR to a directory with kubelet, kube-apiserver, " +
        "kube-controller-manager, kube-scheduler, kubectl (and etcd, or etcd on PATH)",
    };
  }
  const bins: KubeBins = {};
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

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Polls `fn` until it returns a value other than undefined, or fails saying `what` (with the
 * last error `fn` threw).
 *
 * @example
 * ```ts
 * await waitFor("the file", async () => (await Deno.stat("/tmp/f").catch(() => undefined)) && true);
 * ```
 */
export async function waitFor<T>(
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

/** Runs a `sh -e` script; resolves to its stdout, rejects with its stderr. */
export async function sh(script: string): Promise<string> {
  const out = await new Deno.Command("sh", { args: ["-ec", script], stderr: "piped" }).output();
  const dec = new TextDecoder();
  if (!out.success) throw new Error(`sh failed: ${script}\n${dec.decode(out.stderr)}`);
  return dec.decode(out.stdout);
}

/** A CA and certificates signed by it, made with openssl (EC P-256, valid two days). */
async function makePki(pki: string, node: string): Promise<void> {
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
    ${leaf("kubelet", `/O=system:nodes/CN=system:node:${node}`)}
    ${leaf("kubelet-serving", `/CN=${node}`, `IP:127.0.0.1,DNS:${node}`)}
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

/** One component's process; its stdout and stderr go to `log`. */
export interface Proc {
  name: string;
  child: Deno.ChildProcess;
  log: string;
}

/** What `kubectl` returned. */
export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Options of {@link startKubeCluster}. */
export interface KubeClusterOptions {
  bins: KubeBins;
  /** Everything the cluster writes goes here (made if missing; the caller removes it). */
  dir: string;
  /** The CRI socket (a path) the kubelet uses for both runtime and image service. */
  runtimeSocket: string;
  /** The kubelet's `--pod-infra-container-image`. */
  podInfraImage: string;
  /** Fields merged over the kubelet's configuration (KubeletConfiguration, v1beta1). */
  kubeletExtra?: Record<string, unknown>;
  /** The kubelet's maxPods (its default, 110, when not given). */
  maxPods?: number;
  /** The apiserver's --service-cluster-ip-range (default 10.223.91.0/24). */
  serviceCidr?: string;
  /** Extra flags for kube-controller-manager. */
  controllerManagerExtra?: string[];
  /** The kubelet's --v (default 2). */
  kubeletVerbosity?: number;
  /** Names the kubelet's cgroup root, `/k8sc-<name>-<time>` (default "kube-e2e"). */
  name?: string;
}

/**
 * A running cluster. The lifecycle: {@link startKubeCluster} returns once the apiserver is
 * ready and every component is spawned (the node registers shortly after: `waitNodeReady`);
 * `stop()` ends every process (kubelet first); `cleanup()` then unmounts what the kubelet left
 * mounted under `dir` and removes the kubelet's cgroup root.
 */
export interface KubeCluster {
  dir: string;
  bins: KubeBins;
  /** A kubeconfig for the cluster admin (system:masters). */
  adminKubeconfig: string;
  /** The kubelet's HTTPS port on 127.0.0.1. */
  kubeletPort: number;
  /** The kubelet's cgroup root (e.g. `/k8sc-kube-e2e-xyz`). */
  cgroupRoot: string;
  /** The kubelet's command line (after the binary). */
  kubeletArgs: string[];
  /** The kubelet process now running. */
  readonly kubelet: Proc;
  /** Every process spawned so far, kubelet restarts included. */
  procs: Proc[];
  /** kubectl as the cluster admin; rejects on a non-zero exit unless `allowFail`. */
  kubectl(args: string[], o?: { stdin?: string; allowFail?: boolean }): Promise<KubectlResult>;
  /** `kubectl apply -f -` of one object. */
  apply(obj: unknown): Promise<KubectlResult>;
  /** `kubectl get <args> -o json`, parsed. */
  // deno-lint-ignore no-explicit-any
  getJson(args: string[]): Promise<any>;
  /** Waits until the node's Ready condition is True. */
  waitNodeReady(timeoutMs?: number): Promise<void>;
  /** Waits until the kubelet's /healthz answers ok (straight to the kubelet's port). */
  waitKubeletHealthy(timeoutMs?: number): Promise<void>;
  /** SIGTERM to the kubelet, wait for it to exit, start it again with the same arguments. */
  restartKubelet(): Promise<void>;
  /** Starts a process whose output goes to `<dir>/logs/<name>.log`; `stop()` ends it too. */
  spawn(name: string, cmd: string, args: string[]): Proc;
  /** Ends every process, last started first (SIGTERM, SIGKILL after 10 s). */
  stop(): Promise<void>;
  /**
   * After `stop()`: unmounts everything under `dir`, kills what still runs in the cgroup root
   * and removes it (a few tries).
   */
  cleanup(): Promise<void>;
}

/**
 * Starts etcd, kube-apiserver (waits for /readyz), kube-controller-manager, kube-scheduler and
 * the kubelet, all on 127.0.0.1.
 *
 * @example
 * ```ts
 * const c = await startKubeCluster({ bins, dir, runtimeSocket: d.socket, podInfraImage: pause });
 * await c.waitNodeReady();
 * await c.apply({ apiVersion: "v1", kind: "Pod", metadata: { name: "p" }, spec: { … } });
 * ```
 */
export async function startKubeCluster(o: KubeClusterOptions): Promise<KubeCluster> {
  const { bins, dir } = o;
  await Deno.mkdir(`${dir}/logs`, { recursive: true });
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

  async function end(p: Proc): Promise<void> {
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

  const pki = `${dir}/pki`;
  await makePki(pki, NODE);
  const etcdPort = freePort(), peerPort = freePort(), apiPort = freePort();
  const kubeletPort = freePort();
  const healthzPort = freePort();
  const server = `https://127.0.0.1:${apiPort}`;
  const adminKubeconfig = `${dir}/admin.kubeconfig`;
  await Deno.writeTextFile(adminKubeconfig, kubeconfig(server, pki, "admin"));
  await Deno.writeTextFile(`${dir}/kubelet.kubeconfig`, kubeconfig(server, pki, "kubelet"));

  async function kubectl(
    args: string[],
    ko: { stdin?: string; allowFail?: boolean } = {},
  ): Promise<KubectlResult> {
    const child = new Deno.Command(bins.kubectl, {
      args: ["--kubeconfig", adminKubeconfig, ...args],
      stdin: ko.stdin === undefined ? "null" : "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    if (ko.stdin !== undefined) {
      const w = child.stdin.getWriter();
      await w.write(new TextEncoder().encode(ko.stdin));
      await w.close();
    }
    const out = await child.output();
    const dec = new TextDecoder();
    const r = { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
    if (r.code !== 0 && !ko.allowFail) {
      throw new Error(`kubectl ${args.join(" ")} exited ${r.code}: ${r.stderr}`);
    }
    return r;
  }

  const cgroupRoot = `/k8sc-${o.name ?? "kube-e2e"}-${Date.now().toString(36)}`;
  const cluster: KubeCluster = {
    dir,
    bins,
    adminKubeconfig,
    kubeletPort,
    cgroupRoot,
    kubeletArgs: [],
    kubelet: undefined as unknown as Proc,
    procs,
    kubectl,
    apply: (obj) => kubectl(["apply", "-f", "-"], { stdin: JSON.stringify(obj) }),
    getJson: async (args) => JSON.parse((await kubectl(["get", ...args, "-o", "json"])).stdout),
    async waitNodeReady(timeoutMs = 180_000) {
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
        timeoutMs,
        1000,
      );
    },
    async waitKubeletHealthy(timeoutMs = 60_000) {
      await waitFor(
        "the kubelet's healthz",
        async () => {
          const r = await kubectl([
            "--server",
            `https://127.0.0.1:${kubeletPort}`,
            "get",
            "--raw",
            "/healthz",
          ], { allowFail: true });
          return r.stdout === "ok" ? true : undefined;
        },
        timeoutMs,
        1000,
      );
    },
    async restartKubelet() {
      const k = cluster.kubelet;
      k.child.kill("SIGTERM");
      await k.child.status;
      (cluster as { kubelet: Proc }).kubelet = spawn("kubelet", bins.kubelet, cluster.kubeletArgs);
    },
    spawn,
    async stop() {
      for (const p of [...procs].reverse()) await end(p);
    },
    async cleanup() {
      // The kubelet's mounts (secret/configMap tmpfs) and its kubepods cgroups (an emptied
      // cgroup can refuse rmdir for a moment: a few tries).
      await sh(`grep -o ' ${dir}/[^ ]*' /proc/self/mountinfo | sort -r | xargs -r umount -l; true`)
        .catch(() => {});
      // Whatever still runs in a pod's cgroup (a runtime that died with its pods running, or a
      // kubelet stopped before the pods were gone) would keep the cgroups busy.
      await sh(`for c in /sys/fs/cgroup/*/ /sys/fs/cgroup/; do
          [ -d "$c${cgroupRoot}" ] && find "$c${cgroupRoot}" -name cgroup.procs -exec cat {} +
        done 2>/dev/null | sort -u | xargs -r kill -9 2>/dev/null; true`).catch(() => {});
      for (let i = 0; i < 20; i++) {
        const left = await sh(`for c in /sys/fs/cgroup/*/ /sys/fs/cgroup/; do
            [ -d "$c${cgroupRoot}" ] || continue
            find "$c${cgroupRoot}" -depth -type d -exec rmdir {} + 2>/dev/null || true
            [ -d "$c${cgroupRoot}" ] && echo "$c${cgroupRoot}"
          done; true`).catch((e) => `${e}`);
        if (left === "") break;
        if (i === 19) console.log(`left behind: ${left}`);
        await sleep(500);
      }
    },
  };

  try {
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
      `--service-cluster-ip-range=${o.serviceCidr ?? "10.223.91.0/24"}`,
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
      ...(o.controllerManagerExtra ?? []),
    ]);
    spawn("kube-scheduler", bins["kube-scheduler"], [
      `--kubeconfig=${adminKubeconfig}`,
      "--bind-address=127.0.0.1",
      "--secure-port=0",
      "--leader-elect=false",
    ]);

    // The kubelet: everything it writes under the dir, its kubepods tree under a cgroup root of
    // its own, its servers on 127.0.0.1. It wants its cgroup root to exist in every hierarchy
    // (a v1 cpuset needs cpus and mems before anything can join it).
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
        containerRuntimeEndpoint: `unix://${o.runtimeSocket}`,
        imageServiceEndpoint: `unix://${o.runtimeSocket}`,
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
        ...(o.maxPods !== undefined ? { maxPods: o.maxPods } : {}),
        ...o.kubeletExtra,
      }),
    );
    cluster.kubeletArgs = [
      `--config=${dir}/kubelet.yaml`,
      `--kubeconfig=${dir}/kubelet.kubeconfig`,
      `--root-dir=${dir}/kubelet`,
      `--cert-dir=${dir}/kubelet/pki`,
      `--volume-plugin-dir=${dir}/kubelet/volume-plugins`,
      `--hostname-override=${NODE}`,
      `--pod-infra-container-image=${o.podInfraImage}`,
      `--v=${o.kubeletVerbosity ?? 2}`,
    ];
    (cluster as { kubelet: Proc }).kubelet = spawn("kubelet", bins.kubelet, cluster.kubeletArgs);
  } catch (e) {
    await cluster.stop();
    await cluster.cleanup();
    throw e;
  }
  return cluster;
}
