import { describe, expect, it } from "../testing/bdd.ts";
import { MetricsRegistry } from "./registry.ts";
import { serveMetrics } from "./server.ts";

describe("metrics", () => {
  it("renders counters and histograms in the Prometheus text format", () => {
    const reg = new MetricsRegistry();
    const c = reg.counter("t_requests_total", "requests", ["method", "code"]);
    const h = reg.histogram("t_latency_seconds", "latency", ["method"], [0.1, 1]);
    c.inc({ method: 'a"b', code: "OK" });
    c.inc({ method: 'a"b', code: "OK" });
    h.observe({ method: "m" }, 0.05);
    h.observe({ method: "m" }, 0.5);
    const text = reg.render();
    expect(text).toContain("# TYPE t_requests_total counter");
    expect(text).toContain('t_requests_total{method="a\\"b",code="OK"} 2');
    expect(text).toContain('t_latency_seconds_bucket{method="m",le="0.1"} 1');
    expect(text).toContain('t_latency_seconds_bucket{method="m",le="1"} 2');
    expect(text).toContain('t_latency_seconds_bucket{method="m",le="+Inf"} 2');
    expect(text).toContain('t_latency_seconds_count{method="m"} 2');
  });

  it("refuses duplicate names and unknown labels", () => {
    const reg = new MetricsRegistry();
    const c = reg.counter("x_total", "x", ["a"]);
    expect(() => reg.counter("x_total", "x")).toThrow("registered twice");
    expect(() => c.inc({ b: "1" })).toThrow('unknown label "b"');
  });

  it("serves /v1/metrics over HTTP on loopback", async () => {
    const reg = new MetricsRegistry();
    reg.counter("served_total", "s").inc();
    const srv = serveMetrics(reg, { hostname: "127.0.0.1", port: 0 });
    try {
      const res = await fetch(`http://127.0.0.1:${srv.port}/v1/metrics`);
      expect(res.headers.get("content-type")).toContain("text/plain");
      expect(await res.text()).toContain("served_total 1");
      const missing = await fetch(`http://127.0.0.1:${srv.port}/other`);
      expect(missing.status).toBe(404);
      await missing.body?.cancel();
    } finally {
      await srv.close();
    }
  });
});
