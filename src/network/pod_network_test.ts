// Root-only: real CNI plugins (bridge, host-local, portmap, loopback from /usr/lib/cni) on a
// test-unique bridge and subnet, real network namespaces. Traffic goes only to the pod (an
// address inside a namespace this test created) and to the test bridge's own gateway IP.
import { listNetns, withNetns } from "../../ffi/mod.ts";
import { afterAll, beforeAll, describe, expect, isRoot, it, ROOT_REASON } from "../testing/bdd.ts";
import { CniPluginError } from "./cni.ts";
import {
  LOOPBACK_NETWORK,
  netnsName,
  NETWORK_NOT_READY_REASON,
  PodNetwork,
  type SetUpResult,
} from "./pod_network.ts";

const BIN_DIRS = ["/usr/lib/cni", "/opt/cni/bin"];
const IP_FORWARD = "/proc/sys/net/ipv4/ip_forward";

function hex(bytes: number): string {
  return [...crypto.getRandomValues(new Uint8Array(bytes))]
    .map((b) => b.toString(16).padStart(2, "0")).join("");
}

async function run(cmd: string, ...args: string[]): Promise<{ ok: boolean; out: string }> {
  const o = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  const dec = new TextDecoder();
  return { ok: o.success, out: dec.decode(o.stdout) + dec.decode(o.stderr) };
}

async function sh(cmd: string, ...args: string[]): Promise<string> {
  const r = await run(cmd, ...args);
  if (!r.ok) throw new Error(`${cmd} ${args.join(" ")}: ${r.out}`);
  return r.out;
}

/** Splits an `iptables -S` line into arguments, honouring its double-quoted comments. */
function ruleArgs(line: string): string[] {
  return [...line.matchAll(/"((?:[^"\\]|\\.)*)"|(\S+)/g)].map((m) =>
    m[1] !== undefined ? m[1].replace(/\\(.)/g, "$1") : m[2]
  );
}

/** A /24 in 10.222.0.0/16 that no host address or route uses yet. */
async function freeSubnet(): Promise<string> {
  const used = (await sh("ip", "-4", "-o", "addr")) + (await sh("ip", "-4", "route"));
  for (let i = 0; i < 50; i++) {
    const octet = 1 + Math.floor(Math.random() * 254);
    const prefix = `10.222.${octet}.`;
    if (!used.includes(prefix)) return prefix;
  }
  throw new Error("no free 10.222.x.0/24 subnet");
}

/** Reads what a TCP peer sends until it closes, bounded in time. */
async function readAll(conn: Deno.Conn, ms = 3000): Promise<string> {
  const timer = setTimeout(() => conn.close(), ms);
  const chunks: string[] = [];
  const buf = new Uint8Array(1024);
  const dec = new TextDecoder();
  try {
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) break;
      chunks.push(dec.decode(buf.subarray(0, n)));
    }
  } catch {
    /* closed by the timer */
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch { /* already closed */ }
  }
  return chunks.join("");
}

/** Serves one "pong" per connection from a listener created inside the pod's namespace. */
function podListener(netnsPath: string, port: number): { close(): void } {
  // Sockets belong to the namespace of the thread that creates them; Deno.listen creates the
  // socket synchronously on the JS thread, which withNetns has moved into the pod.
  const listener = withNetns(netnsPath, () => Deno.listen({ hostname: "0.0.0.0", port }));
  (async () => {
    try {
      for await (const conn of listener) {
        await conn.write(new TextEncoder().encode("pong\n")).catch(() => {});
        conn.close();
      }
    } catch { /* listener closed */ }
  })();
  return { close: () => listener.close() };
}

describe.skipIf(!isRoot, ROOT_REASON)("pod network over real CNI plugins", () => {
  const suffix = hex(3);
  const bridge = `k8sct${suffix}`; // 11 characters: fits IFNAMSIZ
  const network = `k8sctest-${suffix}`;
  let prefix = ""; // "10.222.N."
  let tmp = "";
  let confDir = "";
  let dataDir = "";
  let cacheDir = "";
  let natBefore = "";
  let forwardBefore = "";
  const podIds: string[] = [];
  const newPodId = () => {
    const id = hex(32);
    podIds.push(id);
    return id;
  };
  const newNet = (dir = confDir) =>
    new PodNetwork({ confDir: dir, binDirs: BIN_DIRS, cacheDir, pluginTimeoutMs: 20_000 });

  const conflist = (extra: Record<string, unknown>[] = []) =>
    JSON.stringify({
      cniVersion: "1.0.0",
      name: network,
      plugins: [
        {
          type: "bridge",
          bridge,
          isGateway: true,
          ipMasq: false,
          ipam: {
            type: "host-local",
            dataDir,
            ranges: [[{ subnet: `${prefix}0/24` }]],
            routes: [{ dst: "0.0.0.0/0" }],
          },
        },
        ...extra,
        { type: "portmap", capabilities: { portMappings: true } },
        { type: "loopback" },
      ],
    });

  /** The leases host-local holds for our network (file names are the leased IPs). */
  const leases = () => {
    try {
      return [...Deno.readDirSync(`${dataDir}/${network}`)].map((e) => e.name)
        .filter((n) => n.startsWith(prefix));
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return [];
      throw e;
    }
  };

  beforeAll(async () => {
    prefix = await freeSubnet();
    tmp = await Deno.makeTempDir({ prefix: "k8sc-podnet-" });
    confDir = `${tmp}/net.d`;
    dataDir = `${tmp}/ipam`;
    cacheDir = `${tmp}/cni-cache`;
    await Deno.mkdir(confDir);
    natBefore = await sh("iptables", "-w", "-t", "nat", "-S");
    forwardBefore = (await Deno.readTextFile(IP_FORWARD)).trim();
  });

  afterAll(async () => {
    const net = newNet();
    for (const podId of podIds) {
      await net.tearDown({ podId }).catch(() => {});
      await run("ip", "netns", "del", netnsName(podId));
    }
    await run("ip", "link", "del", bridge);
    // portmap's shared chains: remove them only if this test created them and no pod of
    // anyone else uses them now.
    const nat = await sh("iptables", "-w", "-t", "nat", "-S");
    for (
      const [chain, parents] of [
        ["CNI-HOSTPORT-DNAT", ["PREROUTING", "OUTPUT"]],
        ["CNI-HOSTPORT-SNAT", ["POSTROUTING"]],
        ["CNI-HOSTPORT-MASQ", ["POSTROUTING"]],
        ["CNI-HOSTPORT-SETMARK", []],
      ] as [string, string[]][]
    ) {
      if (natBefore.includes(`-N ${chain}\n`) || !nat.includes(`-N ${chain}\n`)) continue;
      if (nat.includes(`-A ${chain} -j CNI-DN-`) || nat.includes(`-j CNI-SN-`)) continue;
      for (const line of nat.split("\n")) {
        for (const parent of parents) {
          if (line.startsWith(`-A ${parent} `) && line.includes(`-j ${chain}`)) {
            await run("iptables", "-w", "-t", "nat", ...ruleArgs(line.replace(/^-A /, "-D ")));
          }
        }
      }
      await run("iptables", "-w", "-t", "nat", "-F", chain);
      await run("iptables", "-w", "-t", "nat", "-X", chain);
    }
    // The bridge plugin turns on IP forwarding for a gateway bridge. Nothing a test may do
    // needs it (pod and host talk over the bridge itself), so put the host back as it was.
    if (forwardBefore !== "" && forwardBefore !== "1") {
      await Deno.writeTextFile(IP_FORWARD, forwardBefore);
    }
    await Deno.remove(tmp, { recursive: true });
  });

  it("is not ready without a config (message names the dir), ready with one", async () => {
    const net = newNet();
    const st = await net.status();
    expect(st.ready).toBe(false);
    expect(st.reason).toBe(NETWORK_NOT_READY_REASON);
    expect(st.message).toContain(`no network config found in ${confDir}`);
    await expect(
      net.setUp({ podId: newPodId(), podName: "p", podNamespace: "default" }),
    ).rejects.toThrow(`no network config found in ${confDir}`);
    expect(listNetns()).not.toContain(netnsName(podIds[podIds.length - 1]));

    await Deno.writeTextFile(`${confDir}/10-test.conflist`, conflist());
    expect(await net.status()).toEqual({ ready: true });
  });

  describe("a pod with a host port", () => {
    const podId = hex(32);
    podIds.push(podId);
    const hostPort = 20000 + Math.floor(Math.random() * 20000);
    const portMappings = [{ hostPort, containerPort: 8080, protocol: "TCP" }];
    let res: SetUpResult;
    let listener: { close(): void } | undefined;

    it("gets a namespace with eth0 on the subnet and lo up", async () => {
      res = await newNet().setUp({ podId, podName: "web", podNamespace: "ns1", portMappings });
      expect(res.netnsPath).toBe(`/run/netns/${netnsName(podId)}`);
      expect(res.ips).toHaveLength(1);
      expect(res.ips[0].startsWith(prefix)).toBe(true);
      expect(res.interfaces.some((i) => i.name === "eth0" && i.sandbox === res.netnsPath)).toBe(
        true,
      );
      expect(listNetns()).toContain(netnsName(podId));
      const addrs = await sh("ip", "netns", "exec", netnsName(podId), "ip", "-o", "addr");
      expect(addrs).toMatch(new RegExp(`eth0\\s+inet ${res.ips[0].replaceAll(".", "\\.")}/24`));
      const lo = await sh(
        "ip",
        "netns",
        "exec",
        netnsName(podId),
        "ip",
        "-o",
        "link",
        "show",
        "lo",
      );
      expect(lo).toMatch(/<LOOPBACK,UP,LOWER_UP>/);
      expect(leases()).toEqual([res.ips[0]]);
    });

    it("answers a ping from the host", async () => {
      const r = await run("busybox", "ping", "-c1", "-W2", res.ips[0]);
      expect(r.out).toContain("1 packets received");
      expect(r.ok).toBe(true);
    });

    it("is reachable through its host port on the bridge's gateway IP (portmap DNAT)", async () => {
      listener = podListener(res.netnsPath, 8080);
      const direct = await Deno.connect({ hostname: res.ips[0], port: 8080 });
      expect(await readAll(direct)).toBe("pong\n");
      const gateway = res.result?.ips[0].gateway;
      expect(gateway).toBe(`${prefix}1`);
      const viaHostPort = await Deno.connect({ hostname: gateway!, port: hostPort });
      expect(await readAll(viaHostPort)).toBe("pong\n");
      const viaLocalhost = await Deno.connect({ hostname: "127.0.0.1", port: hostPort });
      expect(await readAll(viaLocalhost)).toBe("pong\n");
      const nat = await sh("iptables", "-w", "-t", "nat", "-S");
      expect(nat).toContain(`--dport ${hostPort}`);
      expect(nat).toContain(podId);
    });

    it("reports its IPs from the cache, also to a new instance (daemon restart)", async () => {
      expect(await newNet().ipsOf(podId)).toEqual(res.ips);
    });

    it("tears down: netns gone, IP released, portmap rules gone; twice is fine", async () => {
      listener?.close();
      const net = newNet();
      await net.tearDown({
        podId,
        netnsPath: res.netnsPath,
        podName: "web",
        podNamespace: "ns1",
        portMappings,
      });
      expect(listNetns()).not.toContain(netnsName(podId));
      expect(await sh("ip", "netns", "list")).not.toContain(netnsName(podId));
      expect(leases()).toEqual([]);
      const nat = await sh("iptables", "-w", "-t", "nat", "-S");
      expect(nat).not.toContain(podId);
      expect(nat).not.toContain(`--dport ${hostPort}`);
      expect(await net.ipsOf(podId)).toEqual([]);
      await net.tearDown({ podId, netnsPath: res.netnsPath, portMappings });
      await net.tearDown({ podId });
    });
  });

  it("tears down after a restart from the cache alone (no netns path, no port mappings)", async () => {
    const podId = newPodId();
    const hostPort = 20000 + Math.floor(Math.random() * 20000);
    const res = await newNet().setUp({
      podId,
      podName: "db",
      podNamespace: "ns2",
      portMappings: [{ hostPort, containerPort: 5432 }],
    });
    expect(await sh("iptables", "-w", "-t", "nat", "-S")).toContain(podId);
    // The "restarted daemon" also has a different config now; DEL must use the cached one.
    await Deno.writeTextFile(
      `${confDir}/10-test.conflist`,
      conflist([{ type: "tuning", sysctl: {} }]),
    );
    const restarted = newNet();
    expect(await restarted.ipsOf(podId)).toEqual(res.ips);
    await restarted.tearDown({ podId });
    expect(listNetns()).not.toContain(netnsName(podId));
    expect(leases()).toEqual([]);
    expect(await sh("iptables", "-w", "-t", "nat", "-S")).not.toContain(podId);
    await Deno.writeTextFile(`${confDir}/10-test.conflist`, conflist());
  });

  it("brings lo up itself: no loopback attachment is cached for a new pod", async () => {
    const podId = newPodId();
    const net = newNet();
    await net.setUp({ podId, podName: "lo", podNamespace: "ns4" });
    expect((await net.cni.cachedAttachmentsOf(podId)).map((a) => a.networkName)).toEqual([
      network,
    ]);
    await net.tearDown({ podId });
  });

  it("tears down a pod an earlier version set up with the loopback plugin: its cache entry goes too", async () => {
    const podId = newPodId();
    const net = newNet();
    const { netnsPath } = await net.setUp({ podId, podName: "old", podNamespace: "ns4" });
    // What the earlier version did on set-up: the loopback plugin's ADD, cached under
    // containerd's network name.
    await net.cni.add(
      {
        name: LOOPBACK_NETWORK,
        cniVersion: "0.3.1",
        disableCheck: true,
        plugins: [{ type: "loopback" }],
        source: "(test)",
      },
      { containerId: podId, netns: netnsPath, ifName: "lo" },
    );
    expect((await net.cni.cachedAttachmentsOf(podId)).map((a) => a.networkName).sort()).toEqual(
      [LOOPBACK_NETWORK, network].sort(),
    );
    await newNet().tearDown({ podId });
    expect(await net.cni.cachedAttachmentsOf(podId)).toEqual([]);
    expect(listNetns()).not.toContain(netnsName(podId));
    expect(leases()).toEqual([]);
  });

  it("undoes a failed ADD: error names the plugin, no netns, no lease, no cache", async () => {
    const brokenDir = `${tmp}/broken.d`;
    await Deno.mkdir(brokenDir);
    await Deno.writeTextFile(
      `${brokenDir}/10-broken.conflist`,
      conflist([{ type: "k8sc-no-such-plugin" }]),
    );
    const net = newNet(brokenDir);
    const status = await net.status();
    expect(status.ready).toBe(false);
    expect(status.message).toContain(`"k8sc-no-such-plugin"`);
    const podId = newPodId();
    const err = await net.setUp({ podId, podName: "bad", podNamespace: "ns3" }).catch((e) => e);
    expect(err).toBeInstanceOf(CniPluginError);
    expect(err.message).toContain(`CNI plugin "k8sc-no-such-plugin" failed ADD`);
    expect(listNetns()).not.toContain(netnsName(podId));
    // bridge + host-local had succeeded before the failure: their lease was given back.
    expect(leases()).toEqual([]);
    expect(await net.ipsOf(podId)).toEqual([]);
    expect([...Deno.readDirSync(`${cacheDir}/results`)].map((e) => e.name).join()).not
      .toContain(podId);
  });

  it("sets up nothing for host-network pods", async () => {
    const res = await newNet().setUp({
      podId: newPodId(),
      podName: "h",
      podNamespace: "kube-system",
      hostNetwork: true,
    });
    expect(res).toEqual({ netnsPath: "", ips: [], interfaces: [] });
  });
});
