/**
 * What the CRI tests share: a real daemon (e2e/harness.ts) whose hosts.toml mirrors
 * registry.k8s.io to a real fixture registry, and CRI v1 clients over its socket.
 *
 * @example
 * ```ts
 * const env = await startCriEnv(["busybox"]);
 * const { imageRef } = await env.images(env.image.pullImage, PullImageRequest.fromPartial({ image: { image: `${env.reg}/busybox:latest` } }));
 * await env.close();
 * ```
 */
import * as grpc from "@grpc/grpc-js";
import { type Registry, startRegistry } from "../../scripts/fixtures/registry.ts";
import {
  type FixtureName,
  type PushedFixture,
  pushFixtures,
} from "../../scripts/fixtures/images.ts";
import { pushOciLayout } from "../../scripts/fixtures/oci.ts";
import { startTestDaemon, type TestDaemon } from "../../e2e/harness.ts";
import { call, CallError } from "../grpc/clients.ts";
import { ImageSpec } from "../gen/runtime/v1/api.ts";
import { emulator } from "../testing/bdd.ts";
import { ImageServiceClient, RuntimeServiceClient } from "../grpc/clients.ts";

type Unary<Req, Res> = (
  req: Req,
  md: grpc.Metadata,
  opts: Partial<grpc.CallOptions>,
  cb: (e: grpc.ServiceError | null, r: Res) => void,
) => unknown;

/** Per call: a pull is a daemon, a registry and an unpack, ~5× slower under qemu-user. */
const DEADLINE_MS = emulator ? 180_000 : 60_000;
/** A daemon, a registry with fixtures pushed, and CRI clients. */
export interface CriEnv {
  registry: Registry;
  /** `127.0.0.1:PORT` of the registry. */
  reg: string;
  daemon: TestDaemon;
  /** Temp dir with config.toml and certs.d. */
  dir: string;
  fixtures: Partial<Record<FixtureName, PushedFixture>>;
  image: ImageServiceClient;
  runtime: RuntimeServiceClient;
  /** One unary call on `image` (bound for you), with a 60 s deadline (180 s emulated). */
  images<Req, Res>(fn: Unary<Req, Res>, req: Req): Promise<Res>;
  /** One unary call on `runtime`. */
  runtimes<Req, Res>(fn: Unary<Req, Res>, req: Req): Promise<Res>;
  /** Pushes a built fixture under another repository and tag. */
  push(fixture: FixtureName, repository: string, tag: string): Promise<string>;
  close(): Promise<void>;
}

/** An ImageSpec for `image`. */
export function spec(image: string): ImageSpec {
  return ImageSpec.fromPartial({ image });
}

/** The gRPC code a promise rejects with (throws when it resolves). */
export async function codeOf(p: Promise<unknown>): Promise<{ code: grpc.status; message: string }> {
  try {
    await p;
  } catch (e) {
    if (e instanceof CallError) return { code: e.code, message: e.message };
    throw e;
  }
  throw new Error("expected the call to fail");
}

/** Starts a registry with `fixtures` pushed and a daemon mirroring registry.k8s.io to it. */
export async function startCriEnv(fixtures: FixtureName[]): Promise<CriEnv> {
  const registry = await startRegistry();
  const reg = registry.address;
  const dir = await Deno.makeTempDir({ prefix: "k8sc-cri-" });
  let daemon: TestDaemon | undefined;
  try {
    const pushed = await pushFixtures(reg, fixtures);
    await Deno.mkdir(`${dir}/certs.d/registry.k8s.io`, { recursive: true });
    await Deno.writeTextFile(
      `${dir}/certs.d/registry.k8s.io/hosts.toml`,
      `server = "http://${reg}"\n[host."http://${reg}"]\n  capabilities = ["pull", "resolve"]\n`,
    );
    await Deno.writeTextFile(`${dir}/config.toml`, `[registry]\nconfig_path = "${dir}/certs.d"\n`);
    daemon = await startTestDaemon({ args: ["--config", `${dir}/config.toml`] });
    const target = `unix://${daemon.socket}`;
    const creds = grpc.credentials.createInsecure();
    const image = new ImageServiceClient(target, creds);
    const runtime = new RuntimeServiceClient(target, creds, {
      channelOverride: image.getChannel(),
    });
    const d = daemon;
    const env: CriEnv = {
      registry,
      reg,
      daemon: d,
      dir,
      fixtures: pushed,
      image,
      runtime,
      images: (fn, req) => call(d.socket, "k8s.io", fn.bind(image), req, DEADLINE_MS),
      runtimes: (fn, req) => call(d.socket, "k8s.io", fn.bind(runtime), req, DEADLINE_MS),
      async push(fixture, repository, tag) {
        const f = pushed[fixture];
        if (!f) throw new Error(`fixture ${fixture} was not pushed`);
        return (await pushOciLayout(reg, f.layout, repository, tag, { ref: f.tag })).digest;
      },
      async close() {
        image.close();
        await stopAll(d, registry, dir);
      },
    };
    return env;
  } catch (e) {
    await stopAll(daemon, registry, dir);
    throw e;
  }
}

async function stopAll(d: TestDaemon | undefined, registry: Registry, dir: string) {
  if (d) {
    await d.stop();
    // Anything the daemon left mounted under its root must not outlive the test.
    await new Deno.Command("sh", {
      args: ["-c", `grep -o ' ${d.dir}/[^ ]*' /proc/self/mountinfo | sort -r | xargs -r umount -l`],
    }).output();
    await d.cleanup();
  }
  await registry.stop();
  await Deno.remove(dir, { recursive: true }).catch(() => {});
}
