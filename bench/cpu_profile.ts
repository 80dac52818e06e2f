/**
 * A CPU profile of a live Deno process through its V8 inspector (`--inspect=HOST:PORT`), for
 * finding where an RPC's time goes in the daemon: samples while `load` runs, summed by
 * function (self time) and by file. The daemon must have been started under the inspector,
 * e.g. with K8SC_DENO pointing at a wrapper that adds `--inspect=127.0.0.1:9230` after `run`.
 *
 * @example
 * ```ts
 * import { cpuProfile } from "./cpu_profile.ts";
 * const report = await cpuProfile("127.0.0.1:9230", async () => { for (...) await call(); });
 * console.log(report);
 * ```
 */

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}

/** Samples the process at `inspector` while `load` runs; returns the top entries as text. */
export async function cpuProfile(
  inspector: string,
  load: () => Promise<void>,
  top = 25,
): Promise<string> {
  const list = await (await fetch(`http://${inspector}/json/list`)).json() as {
    webSocketDebuggerUrl: string;
  }[];
  const ws = new WebSocket(list[0].webSocketDebuggerUrl);
  await new Promise((r, j) => {
    ws.onopen = r;
    ws.onerror = j;
  });
  let id = 0;
  const pending = new Map<number, (v: unknown) => void>();
  ws.onmessage = (e) => {
    const m = JSON.parse(e.data);
    if (m.id !== undefined) pending.get(m.id)?.(m.result);
  };
  const send = (method: string, params: Record<string, unknown> = {}) =>
    new Promise<unknown>((r) => {
      pending.set(++id, r);
      ws.send(JSON.stringify({ id, method, params }));
    });
  try {
    await send("Profiler.enable");
    await send("Profiler.setSamplingInterval", { interval: 100 });
    await send("Profiler.start");
    await load();
    const { profile } = await send("Profiler.stop") as {
      profile: { nodes: ProfileNode[]; samples: number[] };
    };
    const hits = new Map<number, number>();
    for (const s of profile.samples) hits.set(s, (hits.get(s) ?? 0) + 1);
    const total = profile.samples.length;
    const byFn = new Map<string, number>();
    const byFile = new Map<string, number>();
    const parent = new Map<number, ProfileNode>();
    const nodes = new Map<number, ProfileNode>();
    for (const n of profile.nodes) {
      nodes.set(n.id, n);
      for (const c of n.children ?? []) parent.set(c, n);
    }
    const name = (n: ProfileNode) => {
      const file = n.callFrame.url.replace(/^.*\/node_modules\//, "npm:").replace(
        /^file:\/\/.*?\/src\//,
        "src/",
      ) || "(native)";
      return `${n.callFrame.functionName || "(anonymous)"} ${file}:${n.callFrame.lineNumber}`;
    };
    /** Native functions (op_* and builtins) by the JS function that called them, three frames up. */
    const opCallers = new Map<string, number>();
    for (const n of profile.nodes) {
      const h = hits.get(n.id) ?? 0;
      if (!h) continue;
      const file = n.callFrame.url.replace(/^.*\/node_modules\//, "npm:").replace(
        /^file:\/\/.*?\/src\//,
        "src/",
      ) || "(native)";
      const fn = name(n);
      byFn.set(fn, (byFn.get(fn) ?? 0) + h);
      const builtin = !n.callFrame.url && !/^\(.*\)$/.test(n.callFrame.functionName);
      if (builtin || n.callFrame.functionName.startsWith("op_")) {
        const chain: string[] = [];
        for (let p = parent.get(n.id); p && chain.length < 3; p = parent.get(p.id)) {
          chain.push(name(p));
        }
        const k = `${n.callFrame.functionName} <- ${chain.join(" <- ")}`;
        opCallers.set(k, (opCallers.get(k) ?? 0) + h);
      }
      const f = file.replace(/^npm:(@[^/]+\/[^/]+|[^/]+)\/.*$/, "npm:$1");
      byFile.set(f, (byFile.get(f) ?? 0) + h);
    }
    const pct = (x: number) => `${(100 * x / total).toFixed(1).padStart(5)}%`;
    const sorted = (m: Map<string, number>) => [...m].sort((a, b) => b[1] - a[1]).slice(0, top);
    return [
      `${total} samples`,
      "by file (self):",
      ...sorted(byFile).map(([k, v]) => `  ${pct(v)} ${k}`),
      "by function (self):",
      ...sorted(byFn).map(([k, v]) => `  ${pct(v)} ${k}`),
      "native functions by caller:",
      ...sorted(opCallers).slice(0, 10).map(([k, v]) => `  ${pct(v)} ${k}`),
    ].join("\n");
  } finally {
    ws.close();
  }
}
