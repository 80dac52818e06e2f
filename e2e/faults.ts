/**
 * A loopback reverse proxy in front of the real fixture registry that injects one fault: the
 * registry stays real, only what a broken or hostile one would send is changed.
 *
 * @example
 * ```ts
 * const p = startFaultProxy(registry.url, { corruptBlob: layerDigest });
 * await pull(`${p.address}/busybox:latest`); // fails: digest mismatch
 * await p.close();
 * ```
 */
export interface Faults {
  /** Flip one byte in the body of this blob. */
  corruptBlob?: string;
  /** Answer 401 with a Basic challenge to every request. */
  unauthorized?: boolean;
  /** Delay every blob response by this many ms (so a pull can be interrupted midway). */
  slowBlobsMs?: number;
}

export interface FaultProxy {
  address: string;
  requests: string[];
  close(): Promise<void>;
}

export function startFaultProxy(upstream: string, faults: Faults): FaultProxy {
  const requests: string[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const url = new URL(req.url);
    requests.push(`${req.method} ${url.pathname}`);
    if (faults.unauthorized) {
      return new Response('{"errors":[{"code":"UNAUTHORIZED"}]}', {
        status: 401,
        headers: { "www-authenticate": 'Basic realm="fault-proxy"' },
      });
    }
    const res = await fetch(`${upstream}${url.pathname}${url.search}`, {
      method: req.method,
      headers: req.headers,
      body: req.body,
      redirect: "follow",
    });
    const isBlob = url.pathname.includes("/blobs/");
    if (isBlob && faults.slowBlobsMs) await new Promise((r) => setTimeout(r, faults.slowBlobsMs));
    if (
      isBlob && faults.corruptBlob && url.pathname.endsWith(faults.corruptBlob) &&
      req.method === "GET"
    ) {
      const body = new Uint8Array(await res.arrayBuffer());
      body[Math.floor(body.length / 2)] ^= 0xff;
      return new Response(body, { status: res.status, headers: res.headers });
    }
    return new Response(res.body, { status: res.status, headers: res.headers });
  });
  const port = (server.addr as Deno.NetAddr).port;
  return { address: `127.0.0.1:${port}`, requests, close: () => server.shutdown() };
}
