/**
 * Status, RuntimeConfig and UpdateRuntimeConfig. The network condition follows a CNI config
 * directory, so it is tested on an in-process server over a temp dir (never /etc/cni/net.d);
 * the real daemon is checked for what does not depend on the host: RuntimeReady, the cgroup
 * driver, Version.
 */
import { afterAll, beforeAll, describe, expect, isRoot, it, ROOT_REASON } from "../testing/bdd.ts";
import * as grpc from "@grpc/grpc-js";
import { GrpcServer } from "../grpc/server.ts";
import { call } from "../grpc/clients.ts";
import {
  CgroupDriver,
  RuntimeConfigRequest,
  StatusRequest,
  UpdateRuntimeConfigRequest,
  VersionRequest,
} from "../gen/runtime/v1/api.ts";
import { createLogger } from "../log/logger.ts";
import { MetricsRegistry } from "../metrics/registry.ts";
import {
  cniDirStatus,
  NETWORK_NOT_READY_MESSAGE,
  NETWORK_NOT_READY_REASON,
  type RuntimeStatusDeps,
  runtimeStatusHandlers,
} from "./status.ts";
import { type CriEnv, startCriEnv } from "./test_helpers.ts";
import { RuntimeServiceService } from "../grpc/cri_services.ts";
import { RuntimeServiceClient } from "../grpc/clients.ts";

/** A gRPC server on a temp socket serving only the status RPCs. */
async function serve(deps: RuntimeStatusDeps) {
  const dir = await Deno.makeTempDir({ prefix: "k8sc-cri-status-" });
  const socket = `${dir}/cri.sock`;
  const server = new GrpcServer({
    log: createLogger({ level: "fatal", sink: () => {} }),
    metrics: new MetricsRegistry(),
  });
  server.add(RuntimeServiceService, runtimeStatusHandlers(deps));
  await server.listen(socket);
  const client = new RuntimeServiceClient(`unix://${socket}`, grpc.credentials.createInsecure());
  return {
    client,
    unary: <Req, Res>(
      fn: (
        req: Req,
        md: grpc.Metadata,
        opts: Partial<grpc.CallOptions>,
        cb: (e: grpc.ServiceError | null, r: Res) => void,
      ) => unknown,
      req: Req,
    ) => call(socket, "k8s.io", fn.bind(client), req, 10_000),
    async close() {
      client.close();
      await server.shutdown(1000);
      await Deno.remove(dir, { recursive: true });
    },
  };
}

describe("CRI Status over a CNI config directory", () => {
  let cni: string;
  let srv: Awaited<ReturnType<typeof serve>>;
  const status = (verbose = false) =>
    srv.unary(srv.client.status, StatusRequest.fromPartial({ verbose }));
  const condition = async (type: string) =>
    (await status()).status!.conditions.find((c) => c.type === type)!;

  beforeAll(async () => {
    cni = await Deno.makeTempDir({ prefix: "k8sc-cni-" });
    srv = await serve({ cniConfDir: `${cni}/net.d` });
  });
  afterAll(async () => {
    await srv?.close();
    await Deno.remove(cni, { recursive: true }).catch(() => {});
  });

  it("runtime ready, network not ready while there is no CNI config", async () => {
    expect(await condition("RuntimeReady")).toEqual({
      type: "RuntimeReady",
      status: true,
      reason: "",
      message: "",
    });
    expect(await condition("NetworkReady")).toEqual({
      type: "NetworkReady",
      status: false,
      reason: NETWORK_NOT_READY_REASON,
      message: NETWORK_NOT_READY_MESSAGE,
    });
    // A directory with files that are not network configs changes nothing.
    await Deno.mkdir(`${cni}/net.d`);
    await Deno.writeTextFile(`${cni}/net.d/README`, "nothing here");
    expect((await condition("NetworkReady")).status).toBe(false);
    const res = await status(true);
    expect(res.info.lastCNILoadStatus).toBe(NETWORK_NOT_READY_MESSAGE);
    expect(res.runtimeHandlers.map((h) => h.name)).toEqual(["", "runc"]);
  });

  it("network ready once a CNI config is written, with the config in verbose info", async () => {
    await Deno.writeTextFile(
      `${cni}/net.d/10-bridge.conflist`,
      JSON.stringify({ cniVersion: "1.0.0", name: "k8s", plugins: [{ type: "bridge" }] }),
    );
    expect(await condition("NetworkReady")).toEqual({
      type: "NetworkReady",
      status: true,
      reason: "",
      message: "",
    });
    const res = await status(true);
    expect(res.info.lastCNILoadStatus).toBe("OK");
    expect(JSON.parse(res.info.cniconfig)).toEqual({
      confDir: `${cni}/net.d`,
      networks: ["10-bridge.conflist"],
    });
    expect(JSON.parse(res.info.config).cniConfDir).toBe(`${cni}/net.d`);
    expect((await status(false)).info).toEqual({});
  });

  it("UpdateRuntimeConfig stores the pod CIDR; RuntimeConfig says cgroupfs", async () => {
    await srv.unary(
      srv.client.updateRuntimeConfig,
      UpdateRuntimeConfigRequest.fromPartial({
        runtimeConfig: { networkConfig: { podCidr: "10.244.0.0/24" } },
      }),
    );
    expect(JSON.parse((await status(true)).info.config).podCIDR).toBe("10.244.0.0/24");
    const rc = await srv.unary(srv.client.runtimeConfig, RuntimeConfigRequest.fromPartial({}));
    expect(rc.linux?.cgroupDriver).toBe(CgroupDriver.CGROUPFS);
  });
});

describe("CRI status handlers", () => {
  it("reports systemd when configured, and a failing network check as not ready", async () => {
    const h = runtimeStatusHandlers({
      cgroupDriver: "systemd",
      networkStatus: () => Promise.reject(new Error("plugin crashed")),
    });
    expect((await h.runtimeConfig()).linux?.cgroupDriver).toBe(CgroupDriver.SYSTEMD);
    const net = (await h.status(StatusRequest.fromPartial({}))).status!.conditions[1];
    expect(net).toEqual({
      type: "NetworkReady",
      status: false,
      reason: NETWORK_NOT_READY_REASON,
      message: "Network plugin returns error: plugin crashed",
    });
  });
  it("counts .conf, .conflist and .json files only", async () => {
    const dir = await Deno.makeTempDir();
    try {
      for (const f of ["a.conf", "b.conflist", "c.json", "d.txt"]) {
        await Deno.writeTextFile(`${dir}/${f}`, "{}");
      }
      expect(await cniDirStatus(dir)).toEqual({
        ready: true,
        files: ["a.conf", "b.conflist", "c.json"],
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
});

describe.skipIf(!isRoot, ROOT_REASON)("CRI runtime status on the daemon", () => {
  let env: CriEnv;
  beforeAll(async () => {
    env = await startCriEnv([]);
  });
  afterAll(async () => {
    await env?.close();
  });

  it("is RuntimeReady, answers NetworkReady either way, and uses cgroupfs", async () => {
    const res = await env.runtimes(
      env.runtime.status,
      StatusRequest.fromPartial({ verbose: true }),
    );
    const types = res.status!.conditions.map((c) => c.type);
    expect(types).toEqual(["RuntimeReady", "NetworkReady"]);
    expect(res.status!.conditions[0].status).toBe(true);
    expect(JSON.parse(res.info.config).cniConfDir).toBe("/etc/cni/net.d");
    const rc = await env.runtimes(env.runtime.runtimeConfig, RuntimeConfigRequest.fromPartial({}));
    expect(rc.linux?.cgroupDriver).toBe(CgroupDriver.CGROUPFS);
    await env.runtimes(
      env.runtime.updateRuntimeConfig,
      UpdateRuntimeConfigRequest.fromPartial({
        runtimeConfig: { networkConfig: { podCidr: "10.88.0.0/16" } },
      }),
    );
    const v = await env.runtimes(env.runtime.version, VersionRequest.fromPartial({}));
    expect(v.runtimeApiVersion).toBe("v1");
  });
});
