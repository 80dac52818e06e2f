/**
 * The registry client against a real docker-registry on 127.0.0.1, with small fault-injecting
 * proxies (Deno.serve on loopback) in front of it where a misbehaving registry is needed.
 */
import { afterAll, beforeAll, describe, expect, it } from "../testing/bdd.ts";
import { join } from "node:path";
import { type Registry, startRegistry } from "../../scripts/fixtures/registry.ts";
import { type PushedFixture, pushFixtures } from "../../scripts/fixtures/images.ts";
import { pushOciLayout } from "../../scripts/fixtures/oci.ts";
import { digestOf } from "../content/digest.ts";
import {
  FailedPreconditionError,
  NotFoundError,
  UnavailableError,
  UnimplementedError,
} from "../errdefs/errors.ts";
import { MEDIA_TYPES } from "../images/oci.ts";
import { basicAuthHeader, UnauthorizedError } from "./auth.ts";
import { RegistryClient } from "./registry.ts";

/** A loopback HTTP server; `forward` relays a request to the real registry. */
interface Proxy {
  address: string;
  url: string;
  hits: { method: string; path: string; headers: Headers }[];
  stop(): Promise<void>;
}

type Handler = (
  req: Request,
  forward: (req: Request, extra?: HeadersInit) => Promise<Response>,
) => Response | Promise<Response>;

function startProxy(upstream: string, handler: Handler): Proxy {
  const hits: Proxy["hits"] = [];
  const forward = async (req: Request, extra?: HeadersInit) => {
    const u = new URL(req.url);
    const headers = new Headers(req.headers);
    headers.delete("host");
    headers.delete("authorization");
    for (const [k, v] of new Headers(extra)) headers.set(k, v);
    const res = await fetch(upstream + u.pathname + u.search, {
      method: req.method,
      headers,
      redirect: "manual",
    });
    return new Response(req.method === "HEAD" ? null : res.body, {
      status: res.status,
      headers: res.headers,
    });
  };
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    const u = new URL(req.url);
    hits.push({ method: req.method, path: u.pathname + u.search, headers: req.headers });
    return handler(req, forward);
  });
  const address = `127.0.0.1:${server.addr.port}`;
  return { address, url: `http://${address}`, hits, stop: () => server.shutdown() };
}

/** A throwaway CA and a server certificate for 127.0.0.1 it signed (openssl, EC keys). */
async function makeCerts(dir: string): Promise<{ ca: string; cert: string; key: string }> {
  const run = async (...args: string[]) => {
    const out = await new Deno.Command("openssl", {
      args,
      cwd: dir,
      stdout: "null",
      stderr: "piped",
    })
      .output();
    if (!out.success) {
      throw new Error(`openssl ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
    }
  };
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  await run(
    "req",
    "-x509",
    ...ec,
    "-keyout",
    "ca.key",
    "-out",
    "ca.pem",
    "-days",
    "2",
    "-subj",
    "/CN=test CA",
  );
  await run("req", ...ec, "-keyout", "srv.key", "-out", "srv.csr", "-subj", "/CN=127.0.0.1");
  await Deno.writeTextFile(join(dir, "ext.cnf"), "subjectAltName=IP:127.0.0.1\n");
  await run(
    "x509",
    "-req",
    "-in",
    "srv.csr",
    "-CA",
    "ca.pem",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-out",
    "srv.pem",
    "-days",
    "2",
    "-extfile",
    "ext.cnf",
  );
  return {
    ca: join(dir, "ca.pem"),
    cert: await Deno.readTextFile(join(dir, "srv.pem")),
    key: await Deno.readTextFile(join(dir, "srv.key")),
  };
}

async function readAll(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error("expected a rejection");
}

const FAST = { retryDelayMs: 5 };

describe("RegistryClient", () => {
  let reg: Registry;
  let pushed: Partial<Record<string, PushedFixture>>;
  let busybox: PushedFixture;
  let tmp = "";
  const proxies: Proxy[] = [];
  const proxy = (h: Handler) => {
    const p = startProxy(reg.url, h);
    proxies.push(p);
    return p;
  };
  const layerOf = (f: PushedFixture) => f.manifests[0].layers[0];

  beforeAll(async () => {
    reg = await startRegistry();
    pushed = await pushFixtures(reg.address, ["busybox", "multiarch", "docker-schema2", "pause"]);
    busybox = pushed.busybox!;
    await pushOciLayout(reg.address, pushed.pause!.layout, "pause", "3.9", {
      ref: pushed.pause!.tag,
    });
    tmp = await Deno.makeTempDir({ prefix: "k8scontainerd-remotes-" });
  });
  afterAll(async () => {
    for (const p of proxies) await p.stop();
    await reg?.stop();
    if (tmp) await Deno.remove(tmp, { recursive: true });
  });

  describe("against the registry", () => {
    it("resolves the busybox OCI manifest", async () => {
      const client = new RegistryClient();
      const r = await client.resolve(`${reg.address}/busybox:${busybox.tag}`);
      expect(r.name).toBe(`${reg.address}/busybox:${busybox.tag}`);
      expect(r.descriptor).toEqual({
        mediaType: MEDIA_TYPES.ociManifest,
        digest: busybox.digest,
        size: busybox.size,
      });
    });

    it("keeps the Docker schema2 media type and resolves the multi-arch index", async () => {
      const client = new RegistryClient();
      const d2 = pushed["docker-schema2"]!;
      const r = await client.resolve(`${reg.address}/docker-schema2:${d2.tag}`);
      expect(r.descriptor.mediaType).toBe(MEDIA_TYPES.dockerManifest);
      expect(r.descriptor.digest).toBe(d2.digest);
      const ma = pushed.multiarch!;
      const idx = await client.resolve(`${reg.address}/multiarch:${ma.tag}`);
      expect(idx.descriptor).toEqual({
        mediaType: MEDIA_TYPES.ociIndex,
        digest: ma.digest,
        size: ma.size,
      });
      const index = JSON.parse(
        new TextDecoder().decode(await client.fetchManifest(idx.name, idx.descriptor)),
      );
      expect(index.manifests.map((m: { digest: string }) => m.digest).sort()).toEqual(
        ma.manifests.map((m) => m.digest).sort(),
      );
    });

    it("resolves by digest and by tag+digest, adding latest only when neither is given", async () => {
      const client = new RegistryClient();
      const byDigest = await client.resolve(`${reg.address}/busybox@${busybox.digest}`);
      expect(byDigest.name).toBe(`${reg.address}/busybox@${busybox.digest}`);
      expect(byDigest.descriptor.digest).toBe(busybox.digest);
      const both = await client.resolve(`${reg.address}/busybox:${busybox.tag}@${busybox.digest}`);
      expect(both.descriptor.size).toBe(busybox.size);
    });

    it("fetches the manifest, config and layer with matching digests", async () => {
      const client = new RegistryClient();
      const { name, descriptor } = await client.resolve(`${reg.address}/busybox:${busybox.tag}`);
      const bytes = await client.fetchManifest(name, descriptor);
      expect(digestOf(bytes)).toBe(busybox.digest);
      const manifest = JSON.parse(new TextDecoder().decode(bytes));
      const config = await readAll(await client.fetchBlob(name, manifest.config));
      expect(digestOf(config)).toBe(manifest.config.digest);
      const layer = manifest.layers[0];
      let progress = 0;
      const data = await readAll(
        await client.fetchBlob(name, layer, { onProgress: (n) => (progress = n) }),
      );
      expect(data.length).toBe(layer.size);
      expect(digestOf(data)).toBe(layer.digest);
      expect(progress).toBe(layer.size);
      // Resuming from an offset yields exactly the rest.
      const tail = await readAll(await client.fetchBlob(name, layer, { offset: 1000 }));
      expect(tail).toEqual(data.subarray(1000));
    });

    it("404 on every host → NotFoundError naming the reference or blob", async () => {
      const client = new RegistryClient();
      const err = await rejection(client.resolve(`${reg.address}/busybox:nope`));
      expect(err).toBeInstanceOf(NotFoundError);
      expect(err.message).toBe(`${reg.address}/busybox:nope: not found`);
      const missing = await rejection(client.resolve(`${reg.address}/no/such/repo`));
      expect(missing.message).toBe(`${reg.address}/no/such/repo:latest: not found`);
      const d = { mediaType: MEDIA_TYPES.ociLayerGzip, digest: digestOf("x"), size: 1 };
      const blob = await rejection(client.fetchBlob(`${reg.address}/busybox`, d));
      expect(blob).toBeInstanceOf(NotFoundError);
      expect(blob.message).toContain(d.digest);
    });

    it("refuses a manifest over the size limit, naming size and limit", async () => {
      const client = new RegistryClient({ maxManifestSize: 100 });
      const ref = `${reg.address}/busybox:${busybox.tag}`;
      const err = await rejection(client.resolve(ref));
      expect(err).toBeInstanceOf(FailedPreconditionError);
      expect(err.message).toBe(
        `${ref}: manifest is ${busybox.size} bytes, over the 100-byte limit`,
      );
      const fetchErr = await rejection(
        client.fetchManifest(ref, {
          mediaType: busybox.mediaType,
          digest: busybox.digest,
          size: busybox.size,
        }),
      );
      expect(fetchErr.message).toMatch(new RegExp(`${busybox.size} bytes, over the 100-byte`));
    });
  });

  describe("hosts.toml", () => {
    it("the critest hosts.toml makes registry.k8s.io/pause:3.9 come from the local registry", async () => {
      const dir = join(tmp, "critest");
      await Deno.mkdir(join(dir, "registry.k8s.io"), { recursive: true });
      await Deno.writeTextFile(
        join(dir, "registry.k8s.io", "hosts.toml"),
        `server = "${reg.url}"\n[host."${reg.url}"]\n  capabilities = ["pull", "resolve"]\n`,
      );
      const client = new RegistryClient({ hostsDir: dir });
      const r = await client.resolve("registry.k8s.io/pause:3.9");
      expect(r.name).toBe("registry.k8s.io/pause:3.9");
      expect(r.descriptor.digest).toBe(pushed.pause!.digest);
      const manifest = JSON.parse(
        new TextDecoder().decode(await client.fetchManifest(r.name, r.descriptor)),
      );
      const layer = await readAll(await client.fetchBlob(r.name, manifest.layers[0]));
      expect(digestOf(layer)).toBe(manifest.layers[0].digest);
    });

    it("a mirror that answers 404 is skipped for the server; capabilities filter hosts", async () => {
      const missing = proxy(() => new Response("not here", { status: 404 }));
      const pullOnly = proxy((req, forward) => forward(req));
      const dir = join(tmp, "mirrors");
      await Deno.mkdir(join(dir, "mirrored.test"), { recursive: true });
      await Deno.writeTextFile(
        join(dir, "mirrored.test", "hosts.toml"),
        `server = "${reg.url}"\n` +
          `[host."${pullOnly.url}"]\n  capabilities = ["pull"]\n` +
          `[host."${missing.url}"]\n  capabilities = ["pull", "resolve"]\n` +
          `  header = { x-mirror = "yes" }\n`,
      );
      const client = new RegistryClient({ hostsDir: dir });
      const r = await client.resolve(`mirrored.test/busybox:${busybox.tag}`);
      expect(r.descriptor.digest).toBe(busybox.digest);
      expect(pullOnly.hits).toHaveLength(0); // no resolve capability
      expect(missing.hits.map((h) => `${h.method} ${h.path}`)).toEqual([
        `HEAD /v2/busybox/manifests/${busybox.tag}`,
      ]);
      expect(missing.hits[0].headers.get("x-mirror")).toBe("yes");
      // Pulls go to the pull-only mirror first, which has the content.
      const layer = layerOf(busybox);
      const data = await readAll(await client.fetchBlob(r.name, layer));
      expect(digestOf(data)).toBe(layer.digest);
      expect(pullOnly.hits.map((h) => h.path)).toEqual([`/v2/busybox/blobs/${layer.digest}`]);
    });

    it("`ca` in hosts.toml trusts a private CA for an HTTPS registry", async () => {
      const dir = join(tmp, "tls");
      await Deno.mkdir(join(dir, "tls.test"), { recursive: true });
      const certs = await makeCerts(join(dir, "tls.test"));
      const server = Deno.serve(
        { hostname: "127.0.0.1", port: 0, cert: certs.cert, key: certs.key, onListen() {} },
        async (req) => {
          const u = new URL(req.url);
          const res = await fetch(reg.url + u.pathname + u.search, {
            method: req.method,
            headers: req.headers,
          });
          return new Response(req.method === "HEAD" ? null : res.body, res);
        },
      );
      try {
        const url = `https://127.0.0.1:${server.addr.port}`;
        const hostsFile = join(dir, "tls.test", "hosts.toml");
        await Deno.writeTextFile(hostsFile, `server = "${url}"\n`);
        const ref = `tls.test/busybox:${busybox.tag}`;
        const untrusted = await rejection(
          new RegistryClient({ retries: 0, hostsDir: dir }).resolve(ref),
        );
        expect(untrusted).toBeInstanceOf(UnavailableError);
        expect(untrusted.message).toContain(`127.0.0.1:${server.addr.port}`);
        await Deno.writeTextFile(hostsFile, `server = "${url}"\nca = "ca.pem"\n`);
        const client = new RegistryClient({ hostsDir: dir });
        try {
          const r = await client.resolve(ref);
          expect(r.descriptor.digest).toBe(busybox.digest);
          const layer = layerOf(busybox);
          expect(digestOf(await readAll(await client.fetchBlob(r.name, layer)))).toBe(layer.digest);
        } finally {
          client.close();
        }
      } finally {
        await server.shutdown();
      }
    });

    it("override_path: the mirror URL's path is the API root", async () => {
      const prefixed = proxy((req, forward) => {
        const u = new URL(req.url);
        if (!u.pathname.startsWith("/api/")) return new Response("wrong path", { status: 400 });
        const upstream = `${reg.url}/v2/${u.pathname.slice(5)}`;
        return forward(new Request(upstream, { method: req.method, headers: req.headers }));
      });
      const dir = join(tmp, "override");
      await Deno.mkdir(join(dir, "over.test"), { recursive: true });
      await Deno.writeTextFile(
        join(dir, "over.test", "hosts.toml"),
        `server = "${prefixed.url}/api"\noverride_path = true\n`,
      );
      const client = new RegistryClient({ hostsDir: dir });
      const r = await client.resolve(`over.test/busybox:${busybox.tag}`);
      expect(r.descriptor.digest).toBe(busybox.digest);
      expect(prefixed.hits[0].path).toBe(`/api/busybox/manifests/${busybox.tag}`);
    });
  });

  describe("misbehaving registries", () => {
    it("refuses schema 1 manifests with advice", async () => {
      const s1 = proxy((req) => {
        const body = JSON.stringify({ schemaVersion: 1, name: "busybox", tag: "old" });
        return new Response(req.method === "HEAD" ? null : body, {
          headers: {
            "content-type": MEDIA_TYPES.dockerSchema1Signed,
            "docker-content-digest": digestOf(body),
          },
        });
      });
      const client = new RegistryClient();
      const err = await rejection(client.resolve(`${s1.address}/busybox:old`));
      expect(err).toBeInstanceOf(UnimplementedError);
      expect(err.message).toMatch(
        new RegExp(`^${s1.address}/busybox:old: schema 1 manifests are not supported: .*repush`),
      );
      // Also when only the body says so (a generic Content-Type).
      const s1body = proxy((req) =>
        new Response(req.method === "HEAD" ? null : JSON.stringify({ schemaVersion: 1 }), {
          headers: { "content-type": "application/json" },
        })
      );
      expect((await rejection(client.resolve(`${s1body.address}/x:1`))).message).toMatch(
        /schema 1 manifests are not supported/,
      );
    });

    it("refuses unknown media types, naming the type", async () => {
      const art = proxy((req) =>
        new Response(req.method === "HEAD" ? null : JSON.stringify({ schemaVersion: 2 }), {
          headers: { "content-type": "application/vnd.oci.artifact.manifest.v1+json" },
        })
      );
      const err = await rejection(new RegistryClient().resolve(`${art.address}/x:1`));
      expect(err).toBeInstanceOf(UnimplementedError);
      expect(err.message).toContain(
        'unsupported manifest media type "application/vnd.oci.artifact.manifest.v1+json"',
      );
    });

    it("garbage JSON and wrong digests are clear errors naming the reference", async () => {
      // HEAD without a digest forces a GET, whose body is garbage.
      const garbage = proxy((req) =>
        new Response(req.method === "HEAD" ? null : "<html>oops", {
          headers: { "content-type": MEDIA_TYPES.ociManifest },
        })
      );
      const client = new RegistryClient();
      const ref = `${garbage.address}/busybox:latest`;
      const err = await rejection(client.resolve(ref));
      expect(err).toBeInstanceOf(FailedPreconditionError);
      expect(err.message).toMatch(
        new RegExp(`^${ref}: manifest from ${garbage.address} is not valid JSON`),
      );

      // A registry that lies about the digest, or serves other bytes for a digest.
      const other = new TextEncoder().encode(JSON.stringify({ schemaVersion: 2, manifests: [] }));
      const liar = proxy((req, forward) => {
        if (new URL(req.url).pathname.includes("/manifests/")) {
          return new Response(req.method === "HEAD" ? null : other, {
            headers: {
              "content-type": MEDIA_TYPES.ociIndex,
              "docker-content-digest": busybox.digest,
            },
          });
        }
        return forward(req);
      });
      const lref = `${liar.address}/busybox:${busybox.tag}`;
      const byDigest = await rejection(
        client.resolve(`${liar.address}/busybox@${digestOf(other)}`),
      );
      expect(byDigest.message).toMatch(/answered with manifest sha256:.*not the requested digest/);
      const fetched = await rejection(
        client.fetchManifest(lref, {
          mediaType: MEDIA_TYPES.ociManifest,
          digest: busybox.digest,
          size: busybox.size,
        }),
      );
      expect(fetched).toBeInstanceOf(FailedPreconditionError);
      expect(fetched.message).toContain(`${liar.address}/busybox@${busybox.digest}`);
      expect(fetched.message).toMatch(/sent \d+ bytes, the descriptor says/);
      const sameSize = await rejection(
        client.fetchManifest(lref, {
          mediaType: MEDIA_TYPES.ociIndex,
          digest: busybox.digest,
          size: other.length,
        }),
      );
      expect(sameSize.message).toBe(
        `${liar.address}/busybox@${busybox.digest}: ${liar.address} sent content with digest ${
          digestOf(other)
        }`,
      );
    });

    it("retries 5xx with backoff and succeeds on the third attempt", async () => {
      let failures = 2;
      const flaky = proxy((req, forward) => {
        if (failures-- > 0) return new Response("busy", { status: 503 });
        return forward(req);
      });
      const client = new RegistryClient(FAST);
      const r = await client.resolve(`${flaky.address}/busybox:${busybox.tag}`);
      expect(r.descriptor.digest).toBe(busybox.digest);
      expect(flaky.hits).toHaveLength(3);
    });

    it("gives up after `retries` on a registry that keeps failing, naming status and host", async () => {
      const down = proxy(() => new Response("maintenance", { status: 502 }));
      const client = new RegistryClient({ ...FAST, retries: 2 });
      const err = await rejection(client.resolve(`${down.address}/busybox:1`));
      expect(err).toBeInstanceOf(UnavailableError);
      expect(err.message).toBe(
        `HEAD ${down.address}/busybox:1 on ${down.address}: HTTP 502 Bad Gateway ` +
          "(gave up after 3 attempts)",
      );
      expect(down.hits).toHaveLength(3);
      // GET answers quote the body.
      const layer = layerOf(busybox);
      const blobErr = await rejection(client.fetchBlob(`${down.address}/busybox`, layer));
      expect(blobErr).toBeInstanceOf(UnavailableError);
      expect(blobErr.message).toContain(layer.digest);
      expect(blobErr.message).toContain("HTTP 502 Bad Gateway: maintenance");
      expect(down.hits).toHaveLength(6);
    });

    it("fails at once on other 4xx with the status and body excerpt", async () => {
      const forbidden = proxy(() =>
        new Response(JSON.stringify({ errors: [{ code: "DENIED", message: "no pulls today" }] }), {
          status: 403,
        })
      );
      const client = new RegistryClient(FAST);
      const layer = layerOf(busybox);
      const err = await rejection(client.fetchBlob(`${forbidden.address}/busybox`, layer));
      expect(err.message).toMatch(/HTTP 403.*DENIED: no pulls today/);
      expect(err.message).toContain(layer.digest);
      expect(forbidden.hits).toHaveLength(1);
    });

    it("resumes a blob whose connection breaks mid-body, with Range, yielding the exact blob", async () => {
      const layer = layerOf(busybox);
      let cuts = 2;
      const cutter = proxy(async (req, forward) => {
        const res = await forward(req);
        if (!new URL(req.url).pathname.includes("/blobs/") || cuts-- <= 0) return res;
        // Send part of the body, then drop the connection.
        const reader = res.body!.getReader();
        let sent = 0;
        const limit = Math.floor(Number(res.headers.get("content-length")) / 2);
        const body = new ReadableStream<Uint8Array>({
          async pull(c) {
            const { done, value } = await reader.read();
            if (done || sent >= limit) {
              await reader.cancel();
              c.error(new Error("test proxy: connection cut on purpose"));
              return;
            }
            const chunk = value.subarray(0, limit - sent);
            sent += chunk.length;
            c.enqueue(chunk);
          },
        });
        return new Response(body, { status: res.status, headers: res.headers });
      });
      const client = new RegistryClient(FAST);
      let progress = 0;
      const data = await readAll(
        await client.fetchBlob(`${cutter.address}/busybox`, layer, {
          onProgress: (n) => (progress = n),
        }),
      );
      expect(data.length).toBe(layer.size);
      expect(digestOf(data)).toBe(layer.digest);
      expect(progress).toBe(layer.size);
      const ranges = cutter.hits.map((h) => h.headers.get("range"));
      expect(ranges).toHaveLength(3);
      expect(ranges[0]).toBeNull();
      expect(ranges[1]).toMatch(/^bytes=\d+-$/);
      expect(ranges[2]).toMatch(/^bytes=\d+-$/);
      const first = Number(ranges[1]!.slice(6, -1));
      expect(first).toBe(Math.floor(layer.size / 2));
    });

    it("errors the stream naming blob and host when resuming keeps failing", async () => {
      const layer = layerOf(busybox);
      const cutter = proxy(async (req, forward) => {
        const res = await forward(req);
        if (!new URL(req.url).pathname.includes("/blobs/")) return res;
        const reader = res.body!.getReader();
        const body = new ReadableStream<Uint8Array>({
          async pull(c) {
            const { value } = await reader.read();
            c.enqueue(value!.subarray(0, 10));
            await reader.cancel();
            c.error(new Error("test proxy: connection cut on purpose"));
          },
        });
        return new Response(body, { status: res.status, headers: res.headers });
      });
      const client = new RegistryClient({ ...FAST, retries: 2 });
      const stream = await client.fetchBlob(`${cutter.address}/busybox`, layer);
      const err = await rejection(readAll(stream));
      expect(err).toBeInstanceOf(UnavailableError);
      expect(err.message).toContain(layer.digest);
      expect(err.message).toContain(cutter.address);
      expect(err.message).toMatch(/2 attempts to resume failed/);
      expect(cutter.hits).toHaveLength(3);
    });

    it("follows blob redirects without leaking credentials to the other origin", async () => {
      const cdn = proxy((req, forward) => forward(req));
      const good = basicAuthHeader("alice", "s3cret");
      const front = proxy((req, forward) => {
        if (req.headers.get("authorization") !== good) {
          return new Response("", {
            status: 401,
            headers: { "www-authenticate": 'Basic realm="r"' },
          });
        }
        const u = new URL(req.url);
        if (u.pathname.includes("/blobs/")) {
          return Response.redirect(`${cdn.url}${u.pathname}?signed=1`, 307);
        }
        return forward(req);
      });
      const client = new RegistryClient({
        credentials: () => ({ username: "alice", password: "s3cret" }),
      });
      const layer = layerOf(busybox);
      const data = await readAll(
        await client.fetchBlob(`${front.address}/busybox`, layer, { offset: 10 }),
      );
      expect(digestOf(data)).toBe(digestOf(
        await readAll(await client.fetchBlob(`${reg.address}/busybox`, layer, { offset: 10 })),
      ));
      expect(cdn.hits.map((h) => [h.path, h.headers.get("authorization"), h.headers.get("range")]))
        .toEqual([[`/v2/busybox/blobs/${layer.digest}?signed=1`, null, "bytes=10-"]]);
    });

    it("checks Content-Length against the descriptor", async () => {
      const layer = layerOf(busybox);
      const client = new RegistryClient(FAST);
      const err = await rejection(
        client.fetchBlob(`${reg.address}/busybox`, { ...layer, size: layer.size + 1 }),
      );
      expect(err).toBeInstanceOf(FailedPreconditionError);
      expect(err.message).toContain(`Content-Length ${layer.size}, expected ${layer.size + 1}`);
    });

    it("an aborted signal cancels the download", async () => {
      const layer = layerOf(busybox);
      const ac = new AbortController();
      const client = new RegistryClient(FAST);
      const stream = await client.fetchBlob(`${reg.address}/busybox`, layer, { signal: ac.signal });
      const reader = stream.getReader();
      await reader.read();
      ac.abort(new Error("stop"));
      const err = await rejection((async () => {
        for (;;) if ((await reader.read()).done) return;
      })());
      expect(err.message).toBe("stop");
    });
  });

  describe("authentication", () => {
    it("Basic: sends configured credentials after the challenge; refuses without them", async () => {
      const good = basicAuthHeader("alice", "s3cret");
      const basic = proxy((req, forward) => {
        if (req.headers.get("authorization") !== good) {
          return new Response(JSON.stringify({ errors: [{ code: "UNAUTHORIZED" }] }), {
            status: 401,
            headers: { "www-authenticate": 'Basic realm="test registry"' },
          });
        }
        return forward(req);
      });
      const ref = `${basic.address}/busybox:${busybox.tag}`;
      const client = new RegistryClient({
        credentials: (host) =>
          host === basic.address ? { username: "alice", password: "s3cret" } : undefined,
      });
      const r = await client.resolve(ref);
      expect(r.descriptor.digest).toBe(busybox.digest);
      const layer = layerOf(busybox);
      expect(digestOf(await readAll(await client.fetchBlob(r.name, layer)))).toBe(layer.digest);
      // After the first challenge the host is known: later requests carry the header at once.
      expect(basic.hits.map((h) => h.headers.get("authorization") !== null)).toEqual([
        false,
        true,
        true,
      ]);

      const anonymous = await rejection(new RegistryClient().resolve(ref));
      expect(anonymous).toBeInstanceOf(UnauthorizedError);
      expect(anonymous.message).toContain(`pull access denied for busybox on ${basic.address}`);
      expect(anonymous.message).toMatch(/none are configured/);

      const wrong = new RegistryClient({ credentials: () => ({ username: "a", password: "b" }) });
      const wrongErr = await rejection(wrong.resolve(ref));
      expect(wrongErr).toBeInstanceOf(UnauthorizedError);
      expect(wrongErr.message).toMatch(/rejected/);
    });

    /** A registry that wants Bearer tokens from its own /token endpoint. */
    const tokenRegistry = (opts: { expiresIn?: number; neverAccept?: boolean } = {}) => {
      const issued: string[] = [];
      const tokenRequests: { method: string; auth: string | null; query: string; body: string }[] =
        [];
      const p = proxy(async (req, forward) => {
        const u = new URL(req.url);
        if (u.pathname === "/token") {
          const body = req.method === "POST" ? await req.text() : "";
          tokenRequests.push({
            method: req.method,
            auth: req.headers.get("authorization"),
            query: u.search,
            body,
          });
          const form = new URLSearchParams(body);
          const ok = req.headers.get("authorization") === basicAuthHeader("bob", "pw") ||
            form.get("refresh_token") === "refresh-me";
          if (!ok) return new Response("bad credentials", { status: 401 });
          const token = `tok-${issued.length}`;
          issued.push(token);
          return Response.json(
            req.method === "POST"
              ? { access_token: token, expires_in: opts.expiresIn }
              : { token, expires_in: opts.expiresIn },
          );
        }
        const auth = req.headers.get("authorization");
        if (opts.neverAccept || !auth || !issued.includes(auth.replace(/^Bearer /, ""))) {
          return new Response(JSON.stringify({ errors: [{ code: "UNAUTHORIZED" }] }), {
            status: 401,
            headers: {
              "www-authenticate": `Bearer realm="http://${p.address}/token",service="test",` +
                `scope="repository:busybox:pull"`,
            },
          });
        }
        return forward(req);
      });
      return { proxy: p, issued, tokenRequests };
    };

    it("Bearer: fetches a token with Basic credentials and reuses it while valid", async () => {
      const t = tokenRegistry({ expiresIn: 300 });
      const client = new RegistryClient({
        credentials: () => ({ username: "bob", password: "pw" }),
      });
      const r = await client.resolve(`${t.proxy.address}/busybox:${busybox.tag}`);
      const bytes = await client.fetchManifest(r.name, r.descriptor);
      expect(digestOf(bytes)).toBe(busybox.digest);
      const layer = layerOf(busybox);
      expect(digestOf(await readAll(await client.fetchBlob(r.name, layer)))).toBe(layer.digest);
      expect(t.tokenRequests).toHaveLength(1);
      expect(t.tokenRequests[0].method).toBe("GET");
      expect(t.tokenRequests[0].auth).toBe(basicAuthHeader("bob", "pw"));
      expect(new URLSearchParams(t.tokenRequests[0].query).get("service")).toBe("test");
      expect(new URLSearchParams(t.tokenRequests[0].query).get("scope")).toBe(
        "repository:busybox:pull",
      );
      // One challenge, then every request authorised up front.
      const registryHits = t.proxy.hits.filter((h) =>
        h.path !== "/token" && !h.path.startsWith("/token?")
      );
      expect(registryHits.map((h) => h.headers.get("authorization"))).toEqual([
        null,
        "Bearer tok-0",
        "Bearer tok-0",
        "Bearer tok-0",
      ]);
    });

    it("Bearer: an expired token is replaced (expires_in)", async () => {
      const t = tokenRegistry({ expiresIn: 1 });
      const client = new RegistryClient({
        credentials: () => ({ username: "bob", password: "pw" }),
      });
      const ref = `${t.proxy.address}/busybox:${busybox.tag}`;
      await client.resolve(ref);
      await client.resolve(ref);
      expect(t.tokenRequests).toHaveLength(1);
      await new Promise((r) => setTimeout(r, 1100));
      await client.resolve(ref);
      expect(t.tokenRequests).toHaveLength(2);
    });

    it("Bearer: identity tokens are exchanged by POST with refresh_token", async () => {
      const t = tokenRegistry();
      const client = new RegistryClient({ credentials: () => ({ identityToken: "refresh-me" }) });
      const r = await client.resolve(`${t.proxy.address}/busybox:${busybox.tag}`);
      expect(r.descriptor.digest).toBe(busybox.digest);
      expect(t.tokenRequests).toHaveLength(1);
      const form = new URLSearchParams(t.tokenRequests[0].body);
      expect(t.tokenRequests[0].method).toBe("POST");
      expect(form.get("grant_type")).toBe("refresh_token");
      expect(form.get("service")).toBe("test");
      expect(form.get("scope")).toBe("repository:busybox:pull");
    });

    it("Bearer: rejected credentials at the token server are an unauthorized error", async () => {
      const t = tokenRegistry();
      const client = new RegistryClient({
        credentials: () => ({ username: "bob", password: "x" }),
      });
      const err = await rejection(client.resolve(`${t.proxy.address}/busybox:1`));
      expect(err).toBeInstanceOf(UnauthorizedError);
      expect(err.message).toContain(`pull access denied for busybox on ${t.proxy.address}`);
      expect(err.message).toMatch(/token server .* answered 401: bad credentials/);
    });

    it("a registry that answers 401 forever: a clear error after bounded attempts", async () => {
      const t = tokenRegistry({ neverAccept: true });
      const client = new RegistryClient({
        ...FAST,
        credentials: () => ({ username: "bob", password: "pw" }),
      });
      const err = await rejection(client.resolve(`${t.proxy.address}/busybox:1`));
      expect(err).toBeInstanceOf(UnauthorizedError);
      expect(err.message).toContain(`pull access denied for busybox on ${t.proxy.address}`);
      expect(err.message).toMatch(/credentials were rejected/);
      expect(t.tokenRequests).toHaveLength(1);
      expect(t.proxy.hits.filter((h) => h.path.startsWith("/v2/"))).toHaveLength(2);
    });
  });
});
