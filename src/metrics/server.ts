/**
 * The HTTP endpoint Prometheus scrapes: GET /v1/metrics (containerd's path) and /metrics.
 * Off unless `metrics.address` / `--metrics-address` is set.
 *
 * @example
 * ```ts
 * import { MetricsRegistry } from "./registry.ts";
 * import { serveMetrics } from "./server.ts";
 * const srv = serveMetrics(new MetricsRegistry(), { hostname: "127.0.0.1", port: 0 });
 * console.log(srv.port);
 * await srv.close();
 * ```
 */
import type { MetricsRegistry } from "./registry.ts";

export interface MetricsServer {
  hostname: string;
  port: number;
  close(): Promise<void>;
}

export function serveMetrics(
  registry: MetricsRegistry,
  addr: { hostname: string; port: number },
): MetricsServer {
  const server = Deno.serve(
    { hostname: addr.hostname, port: addr.port, onListen: () => {} },
    (req) => {
      const path = new URL(req.url).pathname;
      if (req.method !== "GET" || (path !== "/metrics" && path !== "/v1/metrics")) {
        return new Response("not found: try /v1/metrics\n", { status: 404 });
      }
      return new Response(registry.render(), {
        headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
      });
    },
  );
  const a = server.addr as Deno.NetAddr;
  return { hostname: a.hostname, port: a.port, close: () => server.shutdown() };
}
