import { describe, expect, it } from "../testing/bdd.ts";
import { hostPort, networkFailure } from "./net_errors.ts";
import { RegistryClient } from "./registry.ts";

/** A loopback port nobody listens on (bound, then closed). */
function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

async function fetchError(url: string): Promise<unknown> {
  try {
    const r = await fetch(url);
    await r.body?.cancel();
  } catch (e) {
    return e;
  }
  throw new Error(`${url} answered`);
}

describe("networkFailure", () => {
  it("names host:port, with the scheme's default port", () => {
    expect(hostPort("https://r.example/v2/")).toBe("r.example:443");
    expect(hostPort("http://127.0.0.1:5000/v2/")).toBe("127.0.0.1:5000");
    expect(hostPort("http://[::1]:5000/v2/")).toBe("[::1]:5000");
  });

  it("says connection refused for a loopback port nobody listens on", async () => {
    const url = `http://127.0.0.1:${freePort()}/v2/`;
    expect(networkFailure(await fetchError(url), url)).toBe(
      `connection refused by ${hostPort(url)}`,
    );
  });

  it("says TLS failure, and suggests plain HTTP, for https to a plain HTTP server", async () => {
    await using s = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen() {} },
      () => new Response("x"),
    );
    const url = `https://127.0.0.1:${s.addr.port}/v2/`;
    expect(networkFailure(await fetchError(url), url)).toMatch(
      new RegExp(`^TLS failure talking to 127\\.0\\.0\\.1:${s.addr.port}: .*--plain-http`),
    );
  });

  it("reads a resolver failure as no such host (the words Deno's fetch gives)", () => {
    const e = new TypeError("fetch failed", {
      cause: new Error(
        "error sending request for url (https://nonexistent.invalid/v2/): client error " +
          "(Connect): dns error: failed to lookup address information: Name or service not known",
      ),
    });
    expect(networkFailure(e, "https://nonexistent.invalid/v2/")).toBe(
      "no such host: cannot resolve nonexistent.invalid (Name or service not known)",
    );
  });

  it("a registry that accepts but never answers: timeout, retried, then given up", async () => {
    const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const held: Deno.Conn[] = [];
    const accepting = (async () => {
      for await (const c of l) held.push(c);
    })().catch(() => {});
    const addr = `127.0.0.1:${(l.addr as Deno.NetAddr).port}`;
    const client = new RegistryClient({ retries: 1, retryDelayMs: 1, responseTimeoutMs: 300 });
    try {
      const err = await client.resolve(`${addr}/busybox:1`).then(
        () => undefined,
        (e) => e as Error,
      );
      expect(err?.message).toBe(
        `HEAD ${addr}/busybox:1 on ${addr}: timeout: no answer from ${addr} within 0.3 s ` +
          "(gave up after 2 attempts)",
      );
    } finally {
      l.close();
      held.forEach((c) => c.close());
      await accepting;
    }
  });
});
