/**
 * The modules the CLI loads on demand, by name. When a program starts, Deno reads and parses
 * every module that a literal `import("…")` anywhere in its graph names, whether it ever runs or
 * not: with literals, every CLI call paid for the daemon's whole graph (~14 ms CPU measured for
 * `if (false) await import("../daemon/daemon.ts")`) and for every generated service. A specifier
 * built at run time is invisible to that, so a module here is read only when a command asks for
 * it. `deno compile` cannot see these either: scripts/compile.ts embeds every one with
 * `--include` (LAZY_MODULE_FILES), and lazy_test.ts keeps the names, paths and types in step.
 *
 * @example
 * ```ts
 * import { load } from "./lazy.ts";
 * const { runDoctor } = await load("doctor");
 * ```
 */

/** Each name's module, for the types of what `load` gives (type positions load nothing). */
interface Modules {
  commands: typeof import("./commands.ts");
  images: typeof import("./images.ts");
  stores: typeof import("./stores.ts");
  containers: typeof import("./containers.ts");
  local: typeof import("./local.ts");
  doctor: typeof import("./doctor.ts");
  relay: typeof import("./relay.ts");
  client: typeof import("./client.ts");
  streamingClient: typeof import("../streaming/client.ts");
  config: typeof import("../config/config.ts");
  logger: typeof import("../log/logger.ts");
  daemon: typeof import("../daemon/daemon.ts");
  versionApi: typeof import("../gen/k8scontainerd/services/version/v1/version.ts");
  namespacesApi: typeof import("../gen/k8scontainerd/services/namespaces/v1/namespace.ts");
  imagesApi: typeof import("../gen/k8scontainerd/services/images/v1/images.ts");
  contentApi: typeof import("../gen/k8scontainerd/services/content/v1/content.ts");
  snapshotsApi: typeof import("../gen/k8scontainerd/services/snapshots/v1/snapshots.ts");
  leasesApi: typeof import("../gen/k8scontainerd/services/leases/v1/leases.ts");
  containersApi: typeof import("../gen/k8scontainerd/services/containers/v1/containers.ts");
  tasksApi: typeof import("../gen/k8scontainerd/services/tasks/v1/tasks.ts");
  eventsApi: typeof import("../gen/k8scontainerd/services/events/v1/events.ts");
}

/** Each name's path, relative to this file; the same as in `Modules` (lazy_test.ts checks). */
export const LAZY_MODULES: { readonly [K in keyof Modules]: string } = {
  commands: "./commands.ts",
  images: "./images.ts",
  stores: "./stores.ts",
  containers: "./containers.ts",
  local: "./local.ts",
  doctor: "./doctor.ts",
  relay: "./relay.ts",
  client: "./client.ts",
  streamingClient: "../streaming/client.ts",
  config: "../config/config.ts",
  logger: "../log/logger.ts",
  daemon: "../daemon/daemon.ts",
  versionApi: "../gen/k8scontainerd/services/version/v1/version.ts",
  namespacesApi: "../gen/k8scontainerd/services/namespaces/v1/namespace.ts",
  imagesApi: "../gen/k8scontainerd/services/images/v1/images.ts",
  contentApi: "../gen/k8scontainerd/services/content/v1/content.ts",
  snapshotsApi: "../gen/k8scontainerd/services/snapshots/v1/snapshots.ts",
  leasesApi: "../gen/k8scontainerd/services/leases/v1/leases.ts",
  containersApi: "../gen/k8scontainerd/services/containers/v1/containers.ts",
  tasksApi: "../gen/k8scontainerd/services/tasks/v1/tasks.ts",
  eventsApi: "../gen/k8scontainerd/services/events/v1/events.ts",
};

/** The module of a name, loaded on first use. */
export function load<K extends keyof Modules>(name: K): Promise<Modules[K]> {
  return import(new URL(LAZY_MODULES[name], import.meta.url).href);
}

/** Every lazy module's file URL, for `deno compile --include`. */
export const LAZY_MODULE_URLS: readonly string[] = Object.values(LAZY_MODULES).map((p) =>
  new URL(p, import.meta.url).href
);
