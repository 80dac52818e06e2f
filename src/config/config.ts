/**
 * The daemon's configuration: a TOML file (default /etc/k8scontainerd/config.toml) over
 * built-in defaults, then command-line flags over both. Unknown keys and values of the wrong
 * type are refused with the dotted key named, so a typo never silently falls back to a default.
 *
 * @example
 * ```ts
 * import { loadConfig, renderDefaultConfig } from "./config.ts";
 * const cfg = await loadConfig({ path: "/etc/k8scontainerd/config.toml", overrides: { root: "/tmp/r" } });
 * console.log(cfg.grpc.address, renderDefaultConfig());
 * ```
 */
import { parse, stringify } from "smol-toml";
import { InvalidArgumentError } from "../errdefs/errors.ts";
import { type Level, LEVELS } from "../log/logger.ts";

export const DEFAULT_CONFIG_PATH = "/etc/k8scontainerd/config.toml";

export interface Config {
  /** Schema version of the file; only 1 exists. */
  version: number;
  /** Persistent data: content, snapshots, metadata. */
  root: string;
  /** Runtime state that does not survive a reboot: sockets, container state. */
  state: string;
  grpc: {
    /** The unix socket the CRI and management APIs share. */
    address: string;
    /** Owner of the socket file (the socket is mode 0660). */
    uid: number;
    gid: number;
    /** Largest message either way, in bytes. */
    max_recv_message_size: number;
    max_send_message_size: number;
    /** Streams one connection may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS). */
    max_concurrent_streams: number;
    /** The server implementation: "native" (HTTP/2 written here) or "grpc-js". */
    server: "native" | "grpc-js";
  };
  log: { level: Level };
  images: {
    /** Where layers are unpacked: "overlayfs", or "native" (copies) where overlay is missing. */
    snapshotter: string;
    /** Layers downloaded at once per pull. */
    max_concurrent_downloads: number;
  };
  registry: {
    /** containerd-format hosts.toml directory: <config_path>/<host>/hosts.toml. */
    config_path: string;
    /** Registries reached over plain HTTP without a hosts.toml (loopback always is). */
    plain_http_hosts: string[];
    /** Credentials per registry host, e.g. [registry.auths."registry.example.com"]. */
    auths: Record<string, RegistryAuth>;
  };
  cri: {
    /** The pause image every pod sandbox runs. */
    sandbox_image: string;
    /** Where the CNI network config is read from (the first file, sorted). */
    cni_conf_dir: string;
    /** Where CNI plugins are looked for. */
    cni_bin_dirs: string[];
    /** "cgroupfs", or "systemd" on systemd hosts (reported to the kubelet). */
    cgroup_driver: string;
    /** Where the exec/attach/port-forward streaming server listens (the kubelet proxies to it). */
    stream_server_address: string;
    /** Its port; 0 picks a free one. */
    stream_server_port: number;
    /** Resolve CDI devices (CDI_devices and cdi.k8s.io/ annotations) in CreateContainer. */
    enable_cdi: boolean;
    /** CDI spec directories, read in order; a later one wins for a device both define. */
    cdi_spec_dirs: string[];
    /** Objects per response message of the Stream* list RPCs (StreamContainers …). */
    stream_batch_size: number;
  };
  metrics: {
    /** host:port for the Prometheus endpoint; empty turns it off. */
    address: string;
  };
}

export interface RegistryAuth {
  username?: string;
  password?: string;
  /** base64 of "username:password", as in a docker config.json. */
  auth?: string;
  identity_token?: string;
}

/** Every default, in the shape of the file. */
export function defaultConfig(): Config {
  return {
    version: 1,
    root: "/var/lib/k8scontainerd",
    state: "/run/k8scontainerd",
    grpc: {
      address: "/run/k8scontainerd/k8scontainerd.sock",
      uid: 0,
      gid: 0,
      max_recv_message_size: 16 * 1024 * 1024,
      max_send_message_size: 16 * 1024 * 1024,
      // A client that opens streams and never finishes them holds memory per stream; the
      // kubelet keeps a handful open on its one connection.
      max_concurrent_streams: 1000,
      server: "native",
    },
    log: { level: "info" },
    images: { snapshotter: "overlayfs", max_concurrent_downloads: 3 },
    registry: { config_path: "/etc/k8scontainerd/certs.d", plain_http_hosts: [], auths: {} },
    cri: {
      sandbox_image: "registry.k8s.io/pause:3.9",
      cni_conf_dir: "/etc/cni/net.d",
      cni_bin_dirs: ["/opt/cni/bin", "/usr/lib/cni"],
      cgroup_driver: "cgroupfs",
      stream_server_address: "127.0.0.1",
      stream_server_port: 0,
      enable_cdi: true,
      cdi_spec_dirs: ["/etc/cdi", "/var/run/cdi"],
      stream_batch_size: 100,
    },
    metrics: { address: "" },
  };
}

type Check = (key: string, value: unknown) => void;

const isString: Check = (key, v) => {
  if (typeof v !== "string") throw bad(key, v, "a string");
};
const absolutePath: Check = (key, v) => {
  isString(key, v);
  if (!(v as string).startsWith("/")) throw bad(key, v, "an absolute path");
};
const nonNegativeInt: Check = (key, v) => {
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0) {
    throw bad(key, v, "a non-negative integer");
  }
};
const positiveInt: Check = (key, v) => {
  nonNegativeInt(key, v);
  if (v === 0) throw bad(key, v, "a positive integer");
};
const logLevel: Check = (key, v) => {
  if (typeof v !== "string" || !(LEVELS as readonly string[]).includes(v)) {
    throw bad(key, v, `one of ${LEVELS.join(", ")}`);
  }
};
const hostPort: Check = (key, v) => {
  isString(key, v);
  if (v !== "" && !parseHostPort(v as string)) throw bad(key, v, 'empty or "host:port"');
};
const snapshotterName: Check = (key, v) => {
  if (v !== "overlayfs" && v !== "native") throw bad(key, v, '"overlayfs" or "native"');
};
const stringList: Check = (key, v) => {
  if (!Array.isArray(v) || v.some((x) => typeof x !== "string")) {
    throw bad(key, v, "a list of strings");
  }
};
const isBool: Check = (key, v) => {
  if (typeof v !== "boolean") throw bad(key, v, "true or false");
};
const absolutePathList: Check = (key, v) => {
  if (!Array.isArray(v) || v.some((x) => typeof x !== "string" || !x.startsWith("/"))) {
    throw bad(key, v, "a list of absolute paths");
  }
};
const AUTH_KEYS = ["username", "password", "auth", "identity_token"];
const registryAuths: Check = (key, v) => {
  if (v === null || typeof v !== "object" || Array.isArray(v)) {
    throw bad(key, v, "a table of hosts");
  }
  for (const [host, auth] of Object.entries(v as Record<string, unknown>)) {
    const k = `${key}."${host}"`;
    if (auth === null || typeof auth !== "object" || Array.isArray(auth)) {
      throw bad(k, auth, "a table");
    }
    for (const [field, value] of Object.entries(auth as Record<string, unknown>)) {
      if (!AUTH_KEYS.includes(field)) {
        throw new InvalidArgumentError(`config: unknown key "${k}.${field}"`);
      }
      if (typeof value !== "string") throw bad(`${k}.${field}`, value, "a string");
    }
  }
};
const schemaVersion: Check = (key, v) => {
  if (v !== 1) throw bad(key, v, "1 (the only config version)");
};

/** Validators for every leaf key; the schema is this table plus defaultConfig(). */
const CHECKS: Record<string, Check> = {
  "version": schemaVersion,
  "root": absolutePath,
  "state": absolutePath,
  "grpc.address": absolutePath,
  "grpc.uid": nonNegativeInt,
  "grpc.gid": nonNegativeInt,
  "grpc.max_recv_message_size": positiveInt,
  "grpc.max_send_message_size": positiveInt,
  "grpc.max_concurrent_streams": positiveInt,
  "grpc.server": (key, v) => {
    if (v !== "native" && v !== "grpc-js") throw bad(key, v, '"native" or "grpc-js"');
  },
  "log.level": logLevel,
  "images.snapshotter": snapshotterName,
  "images.max_concurrent_downloads": positiveInt,
  "registry.config_path": absolutePath,
  "registry.plain_http_hosts": stringList,
  "registry.auths": registryAuths,
  "cri.sandbox_image": isString,
  "cri.cni_conf_dir": absolutePath,
  "cri.cni_bin_dirs": stringList,
  "cri.stream_server_address": isString,
  "cri.stream_server_port": (key, v) => {
    nonNegativeInt(key, v);
    if ((v as number) > 65535) throw bad(key, v, "a port number (0 picks a free one)");
  },
  "cri.stream_batch_size": positiveInt,
  "cri.cgroup_driver": (key, v) => {
    if (v !== "cgroupfs" && v !== "systemd") throw bad(key, v, '"cgroupfs" or "systemd"');
  },
  "cri.enable_cdi": isBool,
  "cri.cdi_spec_dirs": absolutePathList,
  "metrics.address": hostPort,
};

function bad(key: string, value: unknown, want: string): InvalidArgumentError {
  return new InvalidArgumentError(
    `config: invalid value ${JSON.stringify(value)} for "${key}": expected ${want}`,
  );
}

/** Splits "host:port" (IPv6 as "[::1]:port"); null when malformed. */
export function parseHostPort(s: string): { hostname: string; port: number } | null {
  const m = /^(?:\[([^\]]+)\]|([^:\[\]]+)):(\d{1,5})$/.exec(s);
  if (!m) return null;
  const port = Number(m[3]);
  if (port > 65535) return null;
  return { hostname: m[1] ?? m[2], port };
}

/** Overlays `src` on `dst`, validating every key against the schema. */
function merge(dst: Record<string, unknown>, src: Record<string, unknown>, prefix: string): void {
  for (const [k, v] of Object.entries(src)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (!(k in dst)) throw new InvalidArgumentError(`config: unknown key "${key}"`);
    const cur = dst[k];
    const whole = CHECKS[key];
    if (whole && cur !== null && typeof cur === "object" && !Array.isArray(cur)) {
      // A table with free-form keys (e.g. registry.auths), checked as a whole.
      whole(key, v);
      dst[k] = v;
      continue;
    }
    if (cur !== null && typeof cur === "object" && !Array.isArray(cur)) {
      if (v === null || typeof v !== "object" || Array.isArray(v)) {
        throw bad(key, v, "a table");
      }
      merge(cur as Record<string, unknown>, v as Record<string, unknown>, key);
      continue;
    }
    const check = CHECKS[key];
    if (!check) throw new InvalidArgumentError(`config: unknown key "${key}"`);
    check(key, v);
    dst[k] = v;
  }
}

/** Parses a config file's text over the defaults. `source` names the file in errors. */
export function parseConfig(text: string, source = "config"): Config {
  let doc: Record<string, unknown>;
  try {
    doc = parse(text) as Record<string, unknown>;
  } catch (e) {
    throw new InvalidArgumentError(`config: ${source} is not valid TOML: ${(e as Error).message}`);
  }
  const cfg = defaultConfig();
  try {
    merge(cfg as unknown as Record<string, unknown>, doc, "");
  } catch (e) {
    if (e instanceof InvalidArgumentError) {
      throw new InvalidArgumentError(e.message.replace(/^config:/, `config: ${source}:`));
    }
    throw e;
  }
  return cfg;
}

/** Flags given on the command line; each wins over the file. */
export interface ConfigOverrides {
  root?: string;
  state?: string;
  address?: string;
  logLevel?: string;
  metricsAddress?: string;
}

/**
 * Loads the config: `path` when given (it must exist), else the default path when present,
 * else the defaults; then applies the overrides, validated like file values.
 */
export async function loadConfig(
  opts: { path?: string; overrides?: ConfigOverrides } = {},
): Promise<Config> {
  let cfg = defaultConfig();
  const path = opts.path ?? DEFAULT_CONFIG_PATH;
  try {
    cfg = parseConfig(await Deno.readTextFile(path), path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound) || opts.path !== undefined) {
      if (e instanceof Deno.errors.NotFound) {
        throw new InvalidArgumentError(`config: ${path}: no such file`);
      }
      throw e;
    }
  }
  const o = opts.overrides ?? {};
  const flags: Record<string, unknown> = {};
  if (o.root !== undefined) flags.root = o.root;
  if (o.state !== undefined) flags.state = o.state;
  if (o.address !== undefined) flags.grpc = { address: o.address };
  if (o.logLevel !== undefined) flags.log = { level: o.logLevel };
  if (o.metricsAddress !== undefined) flags.metrics = { address: o.metricsAddress };
  try {
    merge(cfg as unknown as Record<string, unknown>, flags, "");
  } catch (e) {
    if (e instanceof InvalidArgumentError) {
      throw new InvalidArgumentError(e.message.replace(/^config:/, "flags:"));
    }
    throw e;
  }
  return cfg;
}

/** The full default config as TOML, what `k8scontainerd config default` prints. */
export function renderDefaultConfig(): string {
  return stringify(defaultConfig()) + "\n";
}
