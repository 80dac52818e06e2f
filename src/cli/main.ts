/**
 * The command line: `k8scontainerd [--address SOCK] [-n NS] COMMAND …`. `daemon` runs the
 * daemon in this process; every other command is a plain client of the management API (it
 * never opens the database or the state directory itself), except `doctor` and `config`,
 * which look at the host and the config file.
 */
import { parseArgs } from "node:util";
import {
  DEFAULT_CONFIG_PATH,
  defaultConfig,
  loadConfig,
  renderDefaultConfig,
} from "../config/config.ts";
import { createLogger, parseLevel } from "../log/logger.ts";
import { RuntimeError } from "../errdefs/errors.ts";
import { REVISION, VERSION } from "../version.ts";
import { CallError, connect, type DaemonClient } from "./client.ts";
import { imagesCommand } from "./images.ts";
import {
  attachCommand,
  containersCommand,
  eventsCommand,
  logsCommand,
  runCommand,
  tasksCommand,
} from "./containers.ts";
import { contentCommand, leasesCommand, namespacesCommand, snapshotsCommand } from "./stores.ts";
import { runDoctor } from "./doctor.ts";
import { UsageError } from "./usage_error.ts";
export { UsageError };

export const USAGE =
  `k8scontainerd ${VERSION}: a Kubernetes container runtime (CRI v1) with a ctr-like CLI

Usage: k8scontainerd [--address SOCK] [-n NAMESPACE] COMMAND [ARGS…]

Commands:
  daemon [--config F] [--root D] [--state D] [--address SOCK] [--log-level L] [--metrics-address HOST:PORT]
                     run the daemon in the foreground
  version            print client and daemon versions
  doctor             check the host (kernel features, cgroups, runc, conmon, CNI) and say what to fix
  config default     print the full default configuration
  config check [F]   validate a configuration file (default ${DEFAULT_CONFIG_PATH})
  images             pull | ls | rm | tag | import | export | check   (images help)
  content            ls | get | rm                      blobs by digest
  snapshots          ls | mounts | rm                   unpacked layers and container roots
  namespaces         ls | create | rm
  leases             ls | rm
  run                create and start a container (run --help)
  containers         ls | info | rm
  tasks              ls | start | kill | exec | ps | pause | resume | metrics | rm
  logs [-f] ID       a container's output
  events             the event stream
  help               this text

Global flags:
  --address SOCK     daemon socket (default ${defaultConfig().grpc.address})
  -n, --namespace NS namespace for management commands (default "default"; CRI uses "k8s.io")
`;

/** Runs one CLI invocation; returns the process exit code. */
export async function main(argv: string[]): Promise<number> {
  // Global flags come before the command; the command parses the rest itself.
  let address = Deno.env.get("K8SCONTAINERD_ADDRESS") ?? defaultConfig().grpc.address;
  let namespace = Deno.env.get("K8SCONTAINERD_NAMESPACE") ?? "default";
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--address" || a === "-a") address = need(argv, ++i, a);
    else if (a.startsWith("--address=")) address = a.slice("--address=".length);
    else if (a === "-n" || a === "--namespace") namespace = need(argv, ++i, a);
    else if (a.startsWith("--namespace=")) namespace = a.slice("--namespace=".length);
    else if (a === "-h" || a === "--help") return print(USAGE);
    else if (a === "-v" || a === "--version") {
      return print(`k8scontainerd ${VERSION} (${REVISION})\n`);
    } else if (a.startsWith("-")) throw new UsageError(`unknown global flag ${a}`);
    else break;
  }
  const [cmd, ...rest] = argv.slice(i);
  switch (cmd) {
    case undefined:
    case "help":
      return print(USAGE);
    case "daemon":
      return await daemonCommand(
        rest,
        argv.slice(0, i).some((a) => a.startsWith("--address")) ? address : undefined,
      );
    case "version":
      return await versionCommand(address, namespace);
    case "doctor":
      return await runDoctor();
    case "config":
      return await configCommand(rest);
    case "images":
    case "image":
    case "i":
      return await withClient(address, namespace, (c) => imagesCommand(rest, c));
    case "content":
      return await withClient(address, namespace, (c) => contentCommand(rest, c));
    case "snapshots":
    case "snapshot":
      return await withClient(address, namespace, (c) => snapshotsCommand(rest, c));
    case "namespaces":
    case "namespace":
    case "ns":
      return await withClient(address, namespace, (c) => namespacesCommand(rest, c));
    case "leases":
      return await withClient(address, namespace, (c) => leasesCommand(rest, c));
    case "run":
      return await withClient(address, namespace, (c) => runCommand(rest, c));
    case "containers":
    case "container":
    case "c":
      return await withClient(address, namespace, (c) => containersCommand(rest, c));
    case "tasks":
    case "task":
    case "t":
      return await withClient(address, namespace, (c) => tasksCommand(rest, c));
    case "attach":
      return await withClient(address, namespace, (c) => attachCommand(rest, c));
    case "logs":
      return await withClient(address, namespace, (c) => logsCommand(rest, c));
    case "events":
      return await withClient(address, namespace, (c) => eventsCommand(rest, c));
    case "__relay":
      return await (await import("./relay.ts")).relayCommand(rest);
    default:
      throw new UsageError(`unknown command "${cmd}" (see 'k8scontainerd help')`);
  }
}

function need(argv: string[], i: number, flag: string): string {
  const v = argv[i];
  if (v === undefined) throw new UsageError(`flag ${flag} needs a value`);
  return v;
}

function print(text: string): number {
  Deno.stdout.writeSync(new TextEncoder().encode(text));
  return 0;
}

async function daemonCommand(args: string[], globalAddress?: string): Promise<number> {
  const { values } = parseArgs({
    args,
    strict: true,
    allowPositionals: false,
    options: {
      config: { type: "string", short: "c" },
      root: { type: "string" },
      state: { type: "string" },
      address: { type: "string", short: "a" },
      "log-level": { type: "string", short: "l" },
      "metrics-address": { type: "string" },
    },
  });
  const config = await loadConfig({
    path: values.config,
    overrides: {
      root: values.root,
      state: values.state,
      address: values.address ?? globalAddress,
      logLevel: values["log-level"],
      metricsAddress: values["metrics-address"],
    },
  });
  const log = createLogger({ level: parseLevel(config.log.level) });
  // Loaded only here: client commands start faster without the daemon's stores.
  const { runDaemon } = await import("../daemon/daemon.ts");
  try {
    await runDaemon(config, log);
  } catch (e) {
    log.fatal("daemon failed", { err: e });
    return 1;
  }
  return 0;
}

async function withClient(
  address: string,
  namespace: string,
  fn: (c: DaemonClient) => Promise<number>,
): Promise<number> {
  const c = connect(address, namespace);
  try {
    return await fn(c);
  } finally {
    c.close();
  }
}

async function versionCommand(address: string, namespace: string): Promise<number> {
  console.log(
    `Client:\n  Version:  ${VERSION}\n  Revision: ${REVISION}\n  Deno:     ${Deno.version.deno}\n`,
  );
  const client = connect(address, namespace);
  try {
    const v = await client.unary(client.version.version.bind(client.version), {});
    console.log(
      `Server:\n  Version:  ${v.version}\n  Revision: ${v.revision}\n  Runtime:  ${v.runtime}`,
    );
    return 0;
  } finally {
    client.close();
  }
}

async function configCommand(args: string[]): Promise<number> {
  const [sub, file] = args;
  if (sub === "default") return print(renderDefaultConfig());
  if (sub === "check") {
    const path = file ?? DEFAULT_CONFIG_PATH;
    await loadConfig({ path });
    return print(`${path}: ok\n`);
  }
  throw new UsageError(`usage: k8scontainerd config default | config check [FILE]`);
}

/** Entry point wrapper: prints errors the way an operator wants to read them. */
export async function run(argv: string[]): Promise<number> {
  try {
    return await main(argv);
  } catch (e) {
    if (
      e instanceof UsageError ||
      (e instanceof TypeError && "code" in e && String(e.code).startsWith("ERR_PARSE_ARGS"))
    ) {
      console.error(`k8scontainerd: ${(e as Error).message}`);
      return 2;
    }
    if (e instanceof CallError || e instanceof RuntimeError) {
      console.error(`k8scontainerd: ${e.message}`);
      return 1;
    }
    console.error(`k8scontainerd: ${e instanceof Error ? e.message : String(e)}`);
    return 1;
  }
}
