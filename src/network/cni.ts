/**
 * Invoking CNI plugins per the CNI specification (0.3.x, 0.4.0 and 1.0.0 results; the legacy
 * 0.1/0.2 result shape is read too), the part of libcni a runtime needs:
 *
 * - ADD runs every plugin of a network list in order; each gets the previous one's result as
 *   `prevResult`, and the final result is cached on disk with the config and arguments used,
 *   so that DEL still works after a daemon restart or after the config file changed.
 * - DEL runs the plugins in reverse, with the cached result as `prevResult`; DEL is idempotent:
 *   a missing cache entry or a network namespace that is already gone is not an error.
 * - CHECK (spec ≥ 0.4.0) runs the plugins in order against the cached result.
 *
 * A plugin is a binary found by its `type` in the bin dirs, fed the plugin config on stdin and
 * the `CNI_*` variables in its environment. A failing plugin prints
 * `{"code": N, "msg": "...", "details": "..."}`; that becomes a {@link CniPluginError} naming
 * the plugin, the command and the plugin's own message.
 *
 * @example
 * ```ts
 * import { Cni } from "./cni.ts";
 * import { NetworkConfigLoader } from "./config.ts";
 * const cni = new Cni({ cacheDir: "/run/k8scontainerd/cni" });
 * const list = await new NetworkConfigLoader().load();
 * const rt = { containerId: "abc", netns: "/run/netns/k8sc-abc", ifName: "eth0" };
 * const result = await cni.add(list, rt);
 * console.log(result.ips.map((ip) => ip.address)); // ["10.88.0.5/16"]
 * await cni.del(list, rt);
 * ```
 *
 * @module
 */

import { FailedPreconditionError, InvalidArgumentError, RuntimeError } from "../errdefs/errors.ts";
import type { Logger } from "../log/logger.ts";
import { closeOnExecAll } from "../../ffi/fs.ts";
import type { NetworkConfigList, PluginConfig } from "./config.ts";

/** Where CNI plugin binaries are looked for by default: upstream's dir, then Debian's. */
export const DEFAULT_CNI_BIN_DIRS: readonly string[] = ["/opt/cni/bin", "/usr/lib/cni"];

/** How long one plugin invocation may take before it is killed. */
export const DEFAULT_PLUGIN_TIMEOUT_MS = 60_000;

/** The CNI commands. VERSION and GC are not used by this runtime. */
export type CniCommand = "ADD" | "DEL" | "CHECK";

/** Per-attachment arguments: which container, which namespace, which interface. */
export interface RuntimeConf {
  /** Container (for pods: sandbox) id; part of the cache key and of host-local's lease. */
  containerId: string;
  /** Network namespace path, e.g. /run/netns/NAME. For DEL it may be "" or already gone. */
  netns: string;
  /** Interface name inside the namespace (default "eth0"). */
  ifName?: string;
  /** CNI_ARGS as key/value pairs, joined as `K=V;K=V`. */
  args?: [string, string][];
  /** Values for plugins' declared `capabilities` (portMappings, bandwidth, dns, …). */
  capabilityArgs?: Record<string, unknown>;
}

/** An interface a plugin created or configured (`sandbox` set when it is inside the netns). */
export interface CniInterface {
  name: string;
  mac?: string;
  mtu?: number;
  sandbox?: string;
}

/** An address a plugin assigned. `interface` indexes {@link CniResult.interfaces}. */
export interface CniIpConfig {
  /** CIDR notation: "10.88.0.5/16". */
  address: string;
  gateway?: string;
  interface?: number;
  /** "4" or "6" (always filled in, derived from the address when the result omits it). */
  version: "4" | "6";
}

/** A route a plugin installed in the namespace. */
export interface CniRoute {
  dst: string;
  gw?: string;
  [key: string]: unknown;
}

/** DNS settings a plugin suggests (runtimes usually take DNS from the pod spec instead). */
export interface CniDns {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}

/** A parsed plugin result; `raw` is what the plugin printed, passed on as `prevResult`. */
export interface CniResult {
  cniVersion: string;
  interfaces: CniInterface[];
  ips: CniIpConfig[];
  routes: CniRoute[];
  dns: CniDns;
  raw: Record<string, unknown>;
}

/**
 * A plugin failed: it exited non-zero (with the CNI error object, or only stderr), could not be
 * found, timed out, or printed something that is not a result. The message names the plugin,
 * the command and the network, then the plugin's own `msg` and `details`.
 */
export class CniPluginError extends RuntimeError {
  /**
   * The result accumulated before the failing plugin during ADD, so a caller undoing a
   * half-done ADD can pass it to DEL.
   */
  prevResult?: Record<string, unknown>;

  constructor(
    readonly plugin: string,
    readonly command: CniCommand,
    readonly network: string,
    readonly detail: string,
    opts: { code?: number; kind?: RuntimeError["kind"]; cause?: unknown } = {},
  ) {
    super(
      opts.kind ?? "internal",
      `CNI plugin "${plugin}" failed ${command} on network "${network}": ${detail}`,
      opts.cause === undefined ? undefined : { cause: opts.cause },
    );
    this.code = opts.code;
  }

  /** The CNI error code the plugin reported (see the spec's well-known codes), if any. */
  readonly code?: number;
}

/** What is cached per attachment on ADD (the shape libcni calls cniCacheV1, plus netns). */
export interface CachedAttachment {
  kind: "cniCacheV1";
  containerId: string;
  ifName: string;
  networkName: string;
  netns: string;
  /** The network list as it was at ADD: DEL uses it even if the config file changed since. */
  config: NetworkConfigList;
  cniArgs: [string, string][];
  capabilityArgs: Record<string, unknown>;
  /** The raw final result. */
  result: Record<string, unknown>;
}

/** Construction options of {@link Cni}. */
export interface CniOptions {
  /** Dirs searched for plugin binaries, in order; also passed as CNI_PATH. */
  binDirs?: readonly string[];
  /** Dir for cached results (`<cacheDir>/results/<network>-<containerId>-<ifName>`). */
  cacheDir: string;
  /** Per-invocation timeout (default {@link DEFAULT_PLUGIN_TIMEOUT_MS}). */
  timeoutMs?: number;
  log?: Logger;
}

// Container ids and interface names become file names in the cache dir.
const SAFE_ID = /^[A-Za-z0-9][A-Za-z0-9_.\-]*$/;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** True when CNI version `a` is at least `b` (both "x.y.z"). */
function versionAtLeast(a: string, b: string): boolean {
  const pa = a.split(".").map(Number);
  const pb = b.split(".").map(Number);
  for (let i = 0; i < 3; i++) {
    const x = pa[i] ?? 0, y = pb[i] ?? 0;
    if (x !== y) return x > y;
  }
  return true;
}

function ipVersion(address: string): "4" | "6" {
  return address.includes(":") ? "6" : "4";
}

/**
 * Parses a plugin's result for any supported spec version into one shape. Throws a TypeError
 * saying what is wrong when the object is not a CNI result.
 *
 * @example
 * ```ts
 * import { parseResult } from "./cni.ts";
 * const r = parseResult({
 *   cniVersion: "1.0.0",
 *   interfaces: [{ name: "eth0", sandbox: "/run/netns/p" }],
 *   ips: [{ address: "10.88.0.5/16", gateway: "10.88.0.1", interface: 0 }],
 * });
 * r.ips[0].version; // "4"
 * ```
 */
export function parseResult(raw: unknown): CniResult {
  if (!isObject(raw)) throw new TypeError("result is not a JSON object");
  const cniVersion = typeof raw.cniVersion === "string" ? raw.cniVersion : "";
  const interfaces: CniInterface[] = [];
  const ips: CniIpConfig[] = [];
  const routes: CniRoute[] = [];
  const readRoutes = (v: unknown, where: string) => {
    if (v === undefined || v === null) return;
    if (!Array.isArray(v)) throw new TypeError(`${where} is not an array`);
    for (const r of v) {
      if (!isObject(r) || typeof r.dst !== "string") {
        throw new TypeError(`${where} has a route without "dst"`);
      }
      routes.push(r as CniRoute);
    }
  };

  if (raw.ip4 !== undefined || raw.ip6 !== undefined) {
    // The 0.1.0/0.2.0 shape: one address per family, no interfaces.
    for (const key of ["ip4", "ip6"] as const) {
      const v = raw[key];
      if (v === undefined || v === null) continue;
      if (!isObject(v) || typeof v.ip !== "string") throw new TypeError(`${key} has no "ip"`);
      ips.push({
        address: v.ip,
        gateway: typeof v.gateway === "string" ? v.gateway : undefined,
        version: key === "ip4" ? "4" : "6",
      });
      readRoutes(v.routes, `${key}.routes`);
    }
  } else {
    if (raw.interfaces !== undefined) {
      if (!Array.isArray(raw.interfaces)) throw new TypeError(`"interfaces" is not an array`);
      for (const i of raw.interfaces) {
        if (!isObject(i) || typeof i.name !== "string") {
          throw new TypeError(`an interface has no "name"`);
        }
        interfaces.push({
          name: i.name,
          mac: typeof i.mac === "string" ? i.mac : undefined,
          mtu: typeof i.mtu === "number" ? i.mtu : undefined,
          sandbox: typeof i.sandbox === "string" && i.sandbox !== "" ? i.sandbox : undefined,
        });
      }
    }
    if (raw.ips !== undefined) {
      if (!Array.isArray(raw.ips)) throw new TypeError(`"ips" is not an array`);
      for (const ip of raw.ips) {
        if (!isObject(ip) || typeof ip.address !== "string" || !ip.address.includes("/")) {
          throw new TypeError(`an ip has no CIDR "address"`);
        }
        ips.push({
          address: ip.address,
          gateway: typeof ip.gateway === "string" ? ip.gateway : undefined,
          interface: typeof ip.interface === "number" ? ip.interface : undefined,
          // 0.3.x/0.4.0 say "version"; 1.0.0 dropped it, so derive it from the address.
          version: ip.version === "6" || ip.version === "4" ? ip.version : ipVersion(ip.address),
        });
      }
    }
    readRoutes(raw.routes, `"routes"`);
  }

  const dns: CniDns = {};
  if (isObject(raw.dns)) {
    const strs = (v: unknown) =>
      Array.isArray(v) ? v.filter((s): s is string => typeof s === "string") : undefined;
    dns.nameservers = strs(raw.dns.nameservers);
    dns.domain = typeof raw.dns.domain === "string" ? raw.dns.domain : undefined;
    dns.search = strs(raw.dns.search);
    dns.options = strs(raw.dns.options);
  }
  return { cniVersion, interfaces, ips, routes, dns, raw };
}

/**
 * Builds the stdin of one plugin invocation: its own config with the list's `name` and
 * `cniVersion`, the `prevResult`, and a `runtimeConfig` holding only the capability arguments
 * the plugin declared in `capabilities` (what libcni's injectRuntimeConfig does).
 *
 * @example
 * ```ts
 * import { buildPluginConfig } from "./cni.ts";
 * const conf = buildPluginConfig(
 *   { name: "pods", cniVersion: "1.0.0", disableCheck: false, source: "", plugins: [] },
 *   { type: "portmap", capabilities: { portMappings: true } },
 *   { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: "tcp" }], bandwidth: {} },
 * );
 * // conf.runtimeConfig has portMappings only
 * ```
 */
export function buildPluginConfig(
  list: NetworkConfigList,
  plugin: PluginConfig,
  capabilityArgs: Record<string, unknown> = {},
  prevResult?: Record<string, unknown>,
): Record<string, unknown> {
  const conf: Record<string, unknown> = {
    ...plugin,
    name: list.name,
    cniVersion: list.cniVersion,
  };
  delete conf.prevResult;
  if (prevResult !== undefined) conf.prevResult = prevResult;
  const rc: Record<string, unknown> = {};
  for (const [cap, on] of Object.entries(plugin.capabilities ?? {})) {
    if (on === true && capabilityArgs[cap] !== undefined) rc[cap] = capabilityArgs[cap];
  }
  if (Object.keys(rc).length > 0) {
    const existing = isObject(plugin.runtimeConfig) ? plugin.runtimeConfig : {};
    conf.runtimeConfig = { ...existing, ...rc };
  }
  return conf;
}

interface ExecOutcome {
  code: number;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Reads a stream to the end; `cancel()` stops early, keeping what was read. */
function collect(stream: ReadableStream<Uint8Array>): { done: Promise<string>; cancel(): void } {
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  const done = (async () => {
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        chunks.push(value);
      }
    } catch { /* cancelled */ }
    const all = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
    let off = 0;
    for (const c of chunks) {
      all.set(c, off);
      off += c.length;
    }
    return decoder.decode(all);
  })();
  return { done, cancel: () => void reader.cancel().catch(() => {}) };
}

/**
 * How long to keep reading a plugin's stdout/stderr after it exited. A plugin's own children
 * (a shell plugin's `sleep`, a forked helper) can hold the pipes open long after the plugin is
 * gone; the result was written before exit, so a short grace is enough.
 */
const PIPE_GRACE_MS = 1000;

/** Runs a binary with stdin and env, killing it after `timeoutMs`. */
async function execPlugin(
  path: string,
  env: Record<string, string>,
  stdin: string,
  timeoutMs: number,
): Promise<ExecOutcome> {
  // A plugin that hangs (or forks a helper) must not hold the daemon's sockets: the gRPC edge's
  // accepted connections come from node:net without close-on-exec.
  closeOnExecAll();
  const child = new Deno.Command(path, {
    args: [],
    env,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      child.kill("SIGKILL");
    } catch { /* exited meanwhile */ }
  }, timeoutMs);
  const stdout = collect(child.stdout);
  const stderr = collect(child.stderr);
  let grace: ReturnType<typeof setTimeout> | undefined;
  try {
    const writer = child.stdin.getWriter();
    try {
      await writer.write(encoder.encode(stdin));
      await writer.close();
    } catch {
      // The plugin exited without reading all of stdin; its exit status tells the story.
    }
    const status = await child.status;
    grace = setTimeout(() => {
      stdout.cancel();
      stderr.cancel();
    }, PIPE_GRACE_MS);
    const [out, err] = await Promise.all([stdout.done, stderr.done]);
    return { code: status.code, stdout: out, stderr: err, timedOut };
  } finally {
    clearTimeout(timer);
    clearTimeout(grace);
  }
}

function tail(text: string, max = 500): string {
  const t = text.trim();
  return t.length > max ? "…" + t.slice(t.length - max) : t;
}

/**
 * Runs CNI plugins and keeps the result cache. Stateless apart from that cache, so several
 * instances (or a restarted daemon) over the same cacheDir see the same attachments.
 *
 * @example
 * ```ts
 * import { Cni } from "./cni.ts";
 * const cni = new Cni({ cacheDir: "/var/lib/k8scontainerd/cni", binDirs: ["/usr/lib/cni"] });
 * const cached = await cni.cachedAttachment("pods", "abc", "eth0"); // undefined if none
 * ```
 */
export class Cni {
  readonly binDirs: readonly string[];
  readonly cacheDir: string;
  readonly timeoutMs: number;
  readonly #log?: Logger;

  constructor(opts: CniOptions) {
    this.binDirs = opts.binDirs ?? DEFAULT_CNI_BIN_DIRS;
    this.cacheDir = opts.cacheDir;
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_PLUGIN_TIMEOUT_MS;
    this.#log = opts.log;
  }

  /**
   * The path of plugin binary `type` in the first bin dir that has it, or undefined.
   *
   * @example
   * ```ts
   * import { Cni } from "./cni.ts";
   * await new Cni({ cacheDir: "/tmp/c" }).findPlugin("bridge"); // "/usr/lib/cni/bridge"
   * ```
   */
  async findPlugin(type: string): Promise<string | undefined> {
    for (const dir of this.binDirs) {
      const path = `${dir.replace(/\/+$/, "")}/${type}`;
      try {
        const st = await Deno.stat(path);
        if (st.isFile && st.mode !== null && (st.mode & 0o111) !== 0) return path;
      } catch (e) {
        if (!(e instanceof Deno.errors.NotFound) && !(e instanceof Deno.errors.PermissionDenied)) {
          throw e;
        }
      }
    }
    return undefined;
  }

  /**
   * Runs ADD for every plugin of `list` in order and caches the final result. On failure
   * nothing is cached and nothing is undone (as in libcni): the thrown {@link CniPluginError}
   * carries the partial result in `prevResult` for the caller's DEL.
   */
  async add(list: NetworkConfigList, rt: RuntimeConf): Promise<CniResult> {
    const ifName = this.#checkIds(rt);
    let prev: Record<string, unknown> | undefined;
    for (const plugin of list.plugins) {
      try {
        const out = await this.#invoke("ADD", list, plugin, rt, prev);
        // A plugin that prints nothing leaves the previous result standing.
        if (out !== undefined) prev = out;
      } catch (e) {
        if (e instanceof CniPluginError) e.prevResult = prev;
        throw e;
      }
    }
    const raw = prev ?? { cniVersion: list.cniVersion };
    let result: CniResult;
    try {
      result = parseResult(raw);
    } catch (e) {
      const last = list.plugins[list.plugins.length - 1].type;
      const err = new CniPluginError(last, "ADD", list.name, `invalid result: ${e}`, { cause: e });
      err.prevResult = prev;
      throw err;
    }
    const entry: CachedAttachment = {
      kind: "cniCacheV1",
      containerId: rt.containerId,
      ifName,
      networkName: list.name,
      netns: rt.netns,
      config: list,
      cniArgs: rt.args ?? [],
      capabilityArgs: rt.capabilityArgs ?? {},
      result: raw,
    };
    await this.#writeCache(entry);
    return result;
  }

  /**
   * Runs DEL for every plugin in reverse order. Uses the cached config, arguments and result
   * when there is a cache entry (so DEL matches what ADD did, even after a restart or a config
   * change); without one it uses `list` and `rt` as given. A netns path that no longer exists
   * is passed as an empty CNI_NETNS, which plugins treat as "nothing left inside to clean".
   * Every plugin is tried even if one fails; the cache entry is removed only when all
   * succeeded, so a retried DEL has what it needs. `prevResult` overrides the cached result
   * (for undoing a failed ADD).
   */
  async del(
    list: NetworkConfigList,
    rt: RuntimeConf,
    opts: { prevResult?: Record<string, unknown> } = {},
  ): Promise<void> {
    const ifName = this.#checkIds(rt);
    const cached = await this.cachedAttachment(list.name, rt.containerId, ifName);
    const useList = cached?.config ?? list;
    const netns = rt.netns !== "" ? rt.netns : cached?.netns ?? "";
    const delRt: RuntimeConf = {
      containerId: rt.containerId,
      ifName,
      netns: netns !== "" && await exists(netns) ? netns : "",
      args: cached?.cniArgs ?? rt.args,
      capabilityArgs: { ...(rt.capabilityArgs ?? {}), ...(cached?.capabilityArgs ?? {}) },
    };
    // libcni passes prevResult on DEL only from 0.4.0 on; older plugins do not expect it.
    const prev = versionAtLeast(useList.cniVersion, "0.4.0")
      ? opts.prevResult ?? cached?.result
      : undefined;
    const errors: CniPluginError[] = [];
    for (const plugin of [...useList.plugins].reverse()) {
      try {
        await this.#invoke("DEL", useList, plugin, delRt, prev);
      } catch (e) {
        if (!(e instanceof CniPluginError)) throw e;
        this.#log?.warn("CNI DEL failed", { plugin: plugin.type, error: e.message });
        errors.push(e);
      }
    }
    if (errors.length > 0) {
      if (errors.length === 1) throw errors[0];
      throw new CniPluginError(
        errors[0].plugin,
        "DEL",
        useList.name,
        errors.map((e) => e.message).join("; "),
        { cause: errors[0] },
      );
    }
    await this.#removeCache(useList.name, rt.containerId, ifName);
  }

  /**
   * Runs CHECK for every plugin in order against the cached result. A no-op for networks with
   * `disableCheck` or a spec version before 0.4.0 (which has no CHECK).
   * Throws FailedPreconditionError when there is no cached result to check against.
   */
  async check(list: NetworkConfigList, rt: RuntimeConf): Promise<void> {
    const ifName = this.#checkIds(rt);
    if (list.disableCheck || !versionAtLeast(list.cniVersion, "0.4.0")) return;
    const cached = await this.cachedAttachment(list.name, rt.containerId, ifName);
    if (!cached) {
      throw new FailedPreconditionError(
        `CNI CHECK on network "${list.name}": no cached result for container ${rt.containerId}`,
      );
    }
    const checkRt: RuntimeConf = {
      ...rt,
      ifName,
      args: cached.cniArgs,
      capabilityArgs: cached.capabilityArgs,
    };
    for (const plugin of list.plugins) {
      await this.#invoke("CHECK", list, plugin, checkRt, cached.result);
    }
  }

  /** The cache file of one attachment. */
  cachePath(networkName: string, containerId: string, ifName = "eth0"): string {
    return `${this.cacheDir}/results/${networkName}-${containerId}-${ifName}`;
  }

  /**
   * The cached ADD of an attachment, or undefined when there is none (or it is unreadable,
   * which is logged: a corrupt cache must not make DEL impossible).
   */
  async cachedAttachment(
    networkName: string,
    containerId: string,
    ifName = "eth0",
  ): Promise<CachedAttachment | undefined> {
    return await this.#readCache(this.cachePath(networkName, containerId, ifName));
  }

  /**
   * Every cached attachment of a container, whatever network it was made on (for a caller
   * that knows only the container id, e.g. after a restart with a changed config).
   */
  async cachedAttachmentsOf(containerId: string): Promise<CachedAttachment[]> {
    if (!SAFE_ID.test(containerId)) return [];
    const dir = `${this.cacheDir}/results`;
    const out: CachedAttachment[] = [];
    try {
      for await (const e of Deno.readDir(dir)) {
        // ".tmp-" files are writes in flight or cut short by a crash, never entries.
        if (!e.isFile || !e.name.includes(`-${containerId}-`) || e.name.includes(".tmp-")) {
          continue;
        }
        const entry = await this.#readCache(`${dir}/${e.name}`);
        if (entry && entry.containerId === containerId) out.push(entry);
      }
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return [];
      throw e;
    }
    return out.sort((a, b) => a.ifName.localeCompare(b.ifName));
  }

  async #readCache(path: string): Promise<CachedAttachment | undefined> {
    let text: string;
    try {
      text = await Deno.readTextFile(path);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return undefined;
      throw e;
    }
    try {
      const v = JSON.parse(text);
      if (isObject(v) && v.kind === "cniCacheV1" && isObject(v.config) && isObject(v.result)) {
        return v as unknown as CachedAttachment;
      }
    } catch { /* fall through */ }
    this.#log?.warn("ignoring unreadable CNI result cache", { path });
    return undefined;
  }

  async #writeCache(entry: CachedAttachment): Promise<void> {
    const path = this.cachePath(entry.networkName, entry.containerId, entry.ifName);
    await Deno.mkdir(`${this.cacheDir}/results`, { recursive: true, mode: 0o700 });
    // Write then rename, so a crash never leaves a half-written entry that DEL would ignore.
    const tmp = `${path}.tmp-${crypto.randomUUID()}`;
    try {
      await Deno.writeTextFile(tmp, JSON.stringify(entry), { mode: 0o600 });
      await Deno.rename(tmp, path);
    } catch (e) {
      await Deno.remove(tmp).catch(() => {});
      throw e;
    }
  }

  async #removeCache(networkName: string, containerId: string, ifName: string): Promise<void> {
    try {
      await Deno.remove(this.cachePath(networkName, containerId, ifName));
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
  }

  #checkIds(rt: RuntimeConf): string {
    const ifName = rt.ifName ?? "eth0";
    if (!SAFE_ID.test(rt.containerId)) {
      throw new InvalidArgumentError(`invalid CNI container id ${JSON.stringify(rt.containerId)}`);
    }
    if (!SAFE_ID.test(ifName) || ifName.length > 15) {
      throw new InvalidArgumentError(`invalid interface name ${JSON.stringify(ifName)}`);
    }
    return ifName;
  }

  async #invoke(
    command: CniCommand,
    list: NetworkConfigList,
    plugin: PluginConfig,
    rt: RuntimeConf,
    prevResult: Record<string, unknown> | undefined,
  ): Promise<Record<string, unknown> | undefined> {
    const path = await this.findPlugin(plugin.type);
    if (path === undefined) {
      throw new CniPluginError(
        plugin.type,
        command,
        list.name,
        `plugin binary "${plugin.type}" not found in ${this.binDirs.join(", ")}`,
        { kind: "failed-precondition" },
      );
    }
    const stdin = JSON.stringify(buildPluginConfig(list, plugin, rt.capabilityArgs, prevResult));
    const env: Record<string, string> = {
      CNI_COMMAND: command,
      CNI_CONTAINERID: rt.containerId,
      CNI_NETNS: rt.netns,
      CNI_IFNAME: rt.ifName ?? "eth0",
      CNI_ARGS: (rt.args ?? []).map(([k, v]) => `${k}=${v}`).join(";"),
      CNI_PATH: this.binDirs.join(":"),
    };
    const started = performance.now();
    let out: ExecOutcome;
    try {
      out = await execPlugin(path, env, stdin, this.timeoutMs);
    } catch (e) {
      throw new CniPluginError(plugin.type, command, list.name, `cannot run ${path}: ${e}`, {
        cause: e,
      });
    }
    const ms = Math.round(performance.now() - started);
    this.#log?.debug("CNI plugin ran", {
      plugin: plugin.type,
      command,
      network: list.name,
      container: rt.containerId,
      code: out.code,
      ms,
    });
    if (out.timedOut) {
      throw new CniPluginError(
        plugin.type,
        command,
        list.name,
        `timed out after ${this.timeoutMs} ms (killed)`,
        { kind: "deadline-exceeded" },
      );
    }
    if (out.code !== 0) throw pluginFailure(plugin.type, command, list.name, out);
    if (command !== "ADD" || out.stdout.trim() === "") return undefined;
    let parsed: unknown;
    try {
      parsed = JSON.parse(out.stdout);
      parseResult(parsed); // validate now, so the error names the plugin that printed it
    } catch (e) {
      throw new CniPluginError(
        plugin.type,
        command,
        list.name,
        `invalid result: ${e instanceof Error ? e.message : e}: ${tail(out.stdout, 200)}`,
        { cause: e },
      );
    }
    return parsed as Record<string, unknown>;
  }
}

/** Turns a non-zero exit into an error carrying the plugin's `{code, msg, details}`. */
function pluginFailure(
  plugin: string,
  command: CniCommand,
  network: string,
  out: ExecOutcome,
): CniPluginError {
  let detail = "";
  let code: number | undefined;
  try {
    const v = JSON.parse(out.stdout);
    if (isObject(v)) {
      if (typeof v.code === "number") code = v.code;
      if (typeof v.msg === "string") detail = v.msg;
      if (typeof v.details === "string" && v.details !== "") {
        detail = detail === "" ? v.details : `${detail}: ${v.details}`;
      }
    }
  } catch { /* not the CNI error object: fall back to the raw output */ }
  if (detail === "") {
    detail = tail(out.stderr) || tail(out.stdout) || `exit status ${out.code}`;
  }
  if (code !== undefined) detail += ` (CNI error code ${code})`;
  // Code 11 is the spec's "try again later".
  return new CniPluginError(plugin, command, network, detail, {
    code,
    kind: code === 11 ? "unavailable" : "internal",
  });
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}
