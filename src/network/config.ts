/**
 * Loading the CNI network configuration the way containerd (go-cni / libcni) does: the first
 * file, in lexical order, ending in `.conflist`, `.conf` or `.json` in the configuration
 * directory (default `/etc/cni/net.d`) is the pod network. A single-plugin `.conf` is wrapped
 * into a one-plugin list so the rest of the code only deals with lists.
 *
 * There is no file watcher: {@link NetworkConfigLoader.load} is meant to be called on every
 * RunPodSandbox and CRI Status, and re-reads the file only when its path, size or mtime changed.
 *
 * @example
 * ```ts
 * import { NetworkConfigLoader } from "./config.ts";
 * const loader = new NetworkConfigLoader("/etc/cni/net.d");
 * const list = await loader.load(); // throws NoNetworkConfigError when the dir is empty
 * console.log(list.name, list.plugins.map((p) => p.type));
 * ```
 *
 * @module
 */

import { FailedPreconditionError, InvalidArgumentError } from "../errdefs/errors.ts";

/** Where kubelet-era runtimes look for CNI configuration by default. */
export const DEFAULT_CNI_CONF_DIR = "/etc/cni/net.d";

/** File name endings that count as network configuration, as in libcni's ConfFiles. */
export const CONFIG_EXTENSIONS = [".conflist", ".conf", ".json"] as const;

/**
 * CNI spec versions this runtime can drive. 0.1.0/0.2.0 results have the legacy `ip4`/`ip6`
 * shape; 0.3.x and later the `interfaces`/`ips` shape (see `cni.ts`).
 */
export const SUPPORTED_CNI_VERSIONS = [
  "0.1.0",
  "0.2.0",
  "0.3.0",
  "0.3.1",
  "0.4.0",
  "1.0.0",
  "1.1.0",
] as const;

/** One plugin's configuration: `type` names the binary; everything else is the plugin's. */
export interface PluginConfig {
  /** Binary name looked up in the CNI bin dirs. */
  type: string;
  /** Runtime-provided values the plugin accepts (`portMappings`, `bandwidth`, `dns`, …). */
  capabilities?: Record<string, boolean>;
  [key: string]: unknown;
}

/** A network configuration list (a `.conflist`, or a `.conf` wrapped into one). */
export interface NetworkConfigList {
  /** Network name: part of the result cache key and passed to every plugin. */
  name: string;
  /** Spec version passed to every plugin and governing the result format. */
  cniVersion: string;
  /** Skip CHECK for this network (the `disableCheck` key of a conflist). */
  disableCheck: boolean;
  /** Plugins run in order for ADD and in reverse for DEL. */
  plugins: PluginConfig[];
  /** The file it was read from (for error messages). */
  source: string;
}

/**
 * No configuration file in the directory: the node's network is not ready yet (usually a CNI
 * daemonset has not written its config). The message is what the CRI Status reports.
 */
export class NoNetworkConfigError extends FailedPreconditionError {
  constructor(readonly dir: string, options?: ErrorOptions) {
    super(`no network config found in ${dir}`, options);
  }
}

/** A configuration file exists but is not a usable network config; the message names it. */
export class InvalidNetworkConfigError extends InvalidArgumentError {
  constructor(readonly file: string, why: string, options?: ErrorOptions) {
    super(`invalid CNI network config ${file}: ${why}`, options);
  }
}

// The CNI spec's rule for network names (they become file names in plugin state dirs).
const NETWORK_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$/;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function validatePlugin(file: string, raw: unknown, where: string): PluginConfig {
  if (!isObject(raw)) throw new InvalidNetworkConfigError(file, `${where} is not an object`);
  const type = raw.type;
  if (typeof type !== "string" || type === "") {
    throw new InvalidNetworkConfigError(file, `${where} has no "type"`);
  }
  // The type is a binary name joined to a bin dir: a path would escape the CNI_PATH lookup.
  if (type.includes("/") || type === "." || type === "..") {
    throw new InvalidNetworkConfigError(
      file,
      `${where} has an invalid type ${JSON.stringify(type)}`,
    );
  }
  if (raw.capabilities !== undefined && !isObject(raw.capabilities)) {
    throw new InvalidNetworkConfigError(
      file,
      `${where} (${type}): "capabilities" is not an object`,
    );
  }
  return raw as PluginConfig;
}

/**
 * Parses and validates the text of one configuration file. `.conflist` files must be lists;
 * `.conf`/`.json` files may be a single plugin (wrapped into a list) or a list.
 *
 * @example
 * ```ts
 * import { parseNetworkConfig } from "./config.ts";
 * const list = parseNetworkConfig(
 *   "/etc/cni/net.d/10-lo.conf",
 *   '{"cniVersion":"1.0.0","name":"lo","type":"loopback"}',
 * );
 * list.plugins[0].type; // "loopback"
 * ```
 */
export function parseNetworkConfig(file: string, text: string): NetworkConfigList {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new InvalidNetworkConfigError(file, `not JSON: ${(e as Error).message}`, { cause: e });
  }
  if (!isObject(raw)) throw new InvalidNetworkConfigError(file, "not a JSON object");
  const isList = file.endsWith(".conflist") || Array.isArray(raw.plugins);

  const name = raw.name;
  if (typeof name !== "string" || name === "") {
    throw new InvalidNetworkConfigError(file, `no "name"`);
  }
  if (!NETWORK_NAME.test(name)) {
    throw new InvalidNetworkConfigError(file, `invalid network name ${JSON.stringify(name)}`);
  }
  const cniVersion = raw.cniVersion;
  if (typeof cniVersion !== "string" || cniVersion === "") {
    throw new InvalidNetworkConfigError(file, `no "cniVersion"`);
  }
  if (!(SUPPORTED_CNI_VERSIONS as readonly string[]).includes(cniVersion)) {
    throw new InvalidNetworkConfigError(
      file,
      `unsupported cniVersion ${JSON.stringify(cniVersion)} (supported: ${
        SUPPORTED_CNI_VERSIONS.join(", ")
      })`,
    );
  }

  let plugins: PluginConfig[];
  if (isList) {
    if (!Array.isArray(raw.plugins) || raw.plugins.length === 0) {
      throw new InvalidNetworkConfigError(file, `"plugins" must be a non-empty array`);
    }
    plugins = raw.plugins.map((p, i) => validatePlugin(file, p, `plugins[${i}]`));
  } else {
    // A single plugin: the whole object is the plugin's config (name/cniVersion included,
    // which is what libcni's ConfListFromConf hands the plugin too).
    plugins = [validatePlugin(file, raw, "the config")];
  }
  return {
    name,
    cniVersion,
    disableCheck: raw.disableCheck === true,
    plugins,
    source: file,
  };
}

/**
 * The candidate configuration files of `dir`, lexically sorted; empty if the directory does
 * not exist (a node without CNI config yet is an expected state, not an error).
 *
 * @example
 * ```ts
 * import { listConfigFiles } from "./config.ts";
 * await listConfigFiles("/etc/cni/net.d"); // ["/etc/cni/net.d/10-bridge.conflist", ...]
 * ```
 */
export async function listConfigFiles(dir: string): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) {
      if (e.isDirectory) continue;
      if (CONFIG_EXTENSIONS.some((ext) => e.name.endsWith(ext))) names.push(e.name);
    }
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
  // Code-unit order, which for the ASCII names used here is Go's sort.Strings order.
  names.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const base = dir.replace(/\/+$/, "");
  return names.map((n) => `${base}/${n}`);
}

/**
 * Loads the pod network configuration from a directory, caching the parsed result until the
 * chosen file's path, size or mtime changes. One instance per daemon.
 *
 * @example
 * ```ts
 * import { NetworkConfigLoader, NoNetworkConfigError } from "./config.ts";
 * const loader = new NetworkConfigLoader("/etc/cni/net.d");
 * try {
 *   const list = await loader.load();
 * } catch (e) {
 *   if (e instanceof NoNetworkConfigError) console.log("network not ready:", e.message);
 * }
 * ```
 */
export class NetworkConfigLoader {
  #cached?: { file: string; mtime: number; size: number; list: NetworkConfigList };

  constructor(readonly dir: string = DEFAULT_CNI_CONF_DIR) {}

  /**
   * The current network config. Throws {@link NoNetworkConfigError} when there is none and
   * {@link InvalidNetworkConfigError} (naming the file) when the first file is unusable;
   * like containerd, a broken first file is not skipped in favour of a later one.
   */
  async load(): Promise<NetworkConfigList> {
    const files = await listConfigFiles(this.dir);
    if (files.length === 0) throw new NoNetworkConfigError(this.dir);
    const file = files[0];
    let st: Deno.FileInfo;
    try {
      st = await Deno.stat(file);
    } catch (e) {
      // Removed between readDir and stat: treat as "not there yet".
      if (e instanceof Deno.errors.NotFound) throw new NoNetworkConfigError(this.dir);
      throw e;
    }
    const mtime = st.mtime?.getTime() ?? 0;
    const c = this.#cached;
    if (c && c.file === file && c.mtime === mtime && c.size === st.size) return c.list;
    let text: string;
    try {
      text = await Deno.readTextFile(file);
    } catch (e) {
      throw new InvalidNetworkConfigError(file, `cannot read: ${(e as Error).message}`, {
        cause: e,
      });
    }
    const list = parseNetworkConfig(file, text);
    this.#cached = { file, mtime, size: st.size, list };
    return list;
  }
}
