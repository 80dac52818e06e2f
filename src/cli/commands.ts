/**
 * The CLI's one table of commands and flags: {@link parseCommandLine} parses argv with it and
 * {@link renderReference} / {@link renderHelp} print help from it, so what is accepted and what
 * is documented cannot differ (README's CLI reference is checked against
 * {@link renderReference} by commands_test.ts). Handlers are loaded only when their command
 * runs: help and usage errors never load the gRPC client.
 *
 * @example
 * ```ts
 * import { parseCommandLine } from "./commands.ts";
 * const p = parseCommandLine(["-n", "k8s.io", "images", "ls", "--quiet"]);
 * // p.kind === "run", p.path === ["images", "ls"], p.args.bool("quiet") === true
 * ```
 */
import type { DaemonClient } from "./client.ts";
import { UsageError } from "./usage_error.ts";
import { load } from "./lazy.ts";

/** The daemon's socket unless --address or K8SCONTAINERD_ADDRESS says otherwise. */
export const DEFAULT_ADDRESS = "/run/k8scontainerd/k8scontainerd.sock";
/** Where `config check` looks without a FILE. */
export const DEFAULT_CONFIG_FILE = "/etc/k8scontainerd/config.toml";

/** One flag of a command. Booleans also take `--flag=true|false`. */
export interface Flag {
  name: string;
  short?: string;
  /** The placeholder of a flag that takes a value; a flag without one is a boolean. */
  value?: string;
  /** May be given more than once (values collect in order). */
  multiple?: boolean;
  /** The values accepted; anything else is a usage error. */
  choices?: string[];
  help: string;
}

/** What a command gets: its flags, positionals, and (run, exec) the command line after them. */
export class Args {
  constructor(
    readonly values: Map<string, string | boolean | string[]>,
    readonly positionals: string[],
    readonly command: string[],
  ) {}
  bool(name: string): boolean | undefined {
    const v = this.values.get(name);
    return typeof v === "boolean" ? v : undefined;
  }
  str(name: string): string | undefined {
    const v = this.values.get(name);
    return typeof v === "string" ? v : undefined;
  }
  list(name: string): string[] {
    const v = this.values.get(name);
    return Array.isArray(v) ? v : [];
  }
}

/** Where a command runs: the global flags, and the daemon client, connected on first use. */
export interface Context {
  address: string;
  /** Whether --address was given before the command (the daemon honours it). */
  addressGiven: boolean;
  namespace: string;
  client(): Promise<DaemonClient>;
}

export interface Command {
  name: string;
  aliases?: string[];
  summary: string;
  /** The positionals' synopsis, e.g. "IMAGE ID [CMD…]". */
  args?: string;
  /** How many positionals (default 0..0). */
  min?: number;
  max?: number;
  /**
   * Flags end after this many positionals; what follows is the command line (run, exec). A
   * function decides from the flags seen so far (run: 1 with --name, else 2).
   */
  commandAfter?: number | ((values: Map<string, string | boolean | string[]>) => number);
  /** Like max, decided from the flags given (run: 1 with --name). */
  maxFor?: (values: Map<string, string | boolean | string[]>) => number;
  /** The command line after the positionals may not be empty. */
  commandRequired?: boolean;
  flags?: Flag[];
  subcommands?: Command[];
  /** Not listed in help. */
  hidden?: boolean;
  run?: (a: Args, ctx: Context) => Promise<number>;
}

const LIST_FLAGS: Flag[] = [
  { name: "quiet", short: "q", help: "print only ids (names, digests, keys)" },
  {
    name: "format",
    value: "table|json",
    choices: ["table", "json"],
    help: "table (default) or JSON for scripts",
  },
];

/** run -t, attach and exec -t: docker's detach keys. */
const DETACH_KEYS: Flag = {
  name: "detach-keys",
  value: "KEYS",
  help:
    "the keys that detach, leaving it running (default ctrl-p,ctrl-q; docker's syntax: ctrl-<x> or a character, comma-separated)",
};

const PULL_FLAGS: Flag[] = [
  {
    name: "platform",
    value: "OS/ARCH[/VARIANT]",
    help: "the platform to pull (default: this host's)",
  },
  { name: "all-platforms", help: "every platform of an index" },
  { name: "no-unpack", help: "download only; do not unpack into the snapshotter" },
  { name: "snapshotter", value: "S", help: "unpack into this snapshotter" },
  { name: "user", short: "u", value: "USER[:PASSWORD]", help: "registry credentials" },
  {
    name: "plain-http",
    value: "HOST",
    multiple: true,
    help: "talk plain HTTP to this registry",
  },
  { name: "quiet", short: "q", help: "print only the image name at the end" },
];

const EXEC_FLAGS: Flag[] = [
  { name: "tty", short: "t", help: "an interactive terminal" },
  { name: "interactive", short: "i", help: "stream stdin, stdout and stderr live" },
  DETACH_KEYS,
  {
    name: "env",
    short: "e",
    value: "K=V",
    multiple: true,
    help: "an environment variable",
  },
  { name: "user", short: "u", value: "U", help: "uid, name, uid:gid or name:group" },
  { name: "cwd", value: "DIR", help: "working directory" },
  { name: "timeout", value: "SECONDS", help: "kill the command after this long" },
];

const ONE = { min: 1, max: 1 };
const SOME = { min: 1, max: Infinity };
const ANY = { min: 0, max: Infinity };

const images = () => load("images");
const stores = () => load("stores");
const containers = () => load("containers");
const local = () => load("local");

/** Every command the CLI has, in the order help lists them. */
export const COMMANDS: Command[] = [
  {
    name: "daemon",
    summary: "run the daemon in the foreground (SIGTERM/SIGINT stop it cleanly)",
    flags: [
      {
        name: "config",
        short: "c",
        value: "F",
        help: "config file (default /etc/k8scontainerd/config.toml)",
      },
      { name: "root", value: "D", help: "persistent state (default /var/lib/k8scontainerd)" },
      { name: "state", value: "D", help: "runtime state (default /run/k8scontainerd)" },
      {
        name: "address",
        short: "a",
        value: "SOCK",
        help: `socket to serve on (default ${DEFAULT_ADDRESS})`,
      },
      {
        name: "log-level",
        short: "l",
        value: "L",
        help: "trace, debug, info, warn, error or fatal",
      },
      { name: "metrics-address", value: "HOST:PORT", help: "serve Prometheus metrics there" },
    ],
    run: (a, ctx) => local().then((m) => m.daemonCommand(a, ctx)),
  },
  {
    name: "version",
    summary: "client and daemon versions",
    run: (a, ctx) => local().then((m) => m.versionCommand(a, ctx)),
  },
  {
    name: "doctor",
    summary:
      "check the host: kernel features, cgroup v1/v2, runc / crun / conmon / CNI plugins, iptables; says what to fix",
    run: () => load("doctor").then((m) => m.runDoctor()),
  },
  {
    name: "config",
    summary: "the configuration file",
    subcommands: [
      {
        name: "default",
        summary: "print the full default configuration",
        run: (a, ctx) => local().then((m) => m.configDefault(a, ctx)),
      },
      {
        name: "check",
        summary: `validate a configuration file (default ${DEFAULT_CONFIG_FILE})`,
        args: "[FILE]",
        min: 0,
        max: 1,
        run: (a, ctx) => local().then((m) => m.configCheck(a, ctx)),
      },
    ],
  },
  {
    name: "images",
    aliases: ["image", "i"],
    summary: "images: pulled, imported, named",
    subcommands: [
      {
        name: "pull",
        summary: "download and unpack an image (a progress bar per layer on a terminal)",
        args: "REF",
        ...ONE,
        flags: PULL_FLAGS,
        run: (a, ctx) => images().then((m) => m.imagesPull(a, ctx)),
      },
      {
        name: "ls",
        aliases: ["list"],
        summary: "list images (filters: name==x, name~=re, labels.k==v, target.digest==…)",
        args: "[FILTER…]",
        ...ANY,
        flags: LIST_FLAGS,
        run: (a, ctx) => images().then((m) => m.imagesList(a, ctx)),
      },
      {
        name: "rm",
        aliases: ["remove"],
        summary: "remove image names; content and snapshots are garbage collected",
        args: "REF…",
        ...SOME,
        flags: [{ name: "sync", help: "collect garbage now, before returning" }],
        run: (a, ctx) => images().then((m) => m.imagesRemove(a, ctx)),
      },
      {
        name: "tag",
        summary: "give an image more names",
        args: "SOURCE TARGET…",
        min: 2,
        max: Infinity,
        flags: [{ name: "force", help: "move a TARGET name that already exists" }],
        run: (a, ctx) => images().then((m) => m.imagesTag(a, ctx)),
      },
      {
        name: "import",
        summary: "import an OCI layout or docker save tarball (- for stdin)",
        args: "FILE|-",
        ...ONE,
        flags: [
          { name: "base-name", value: "NAME", help: "name images that have none NAME:TAG" },
          { name: "no-unpack", help: "do not unpack into the snapshotter" },
          { name: "platform", value: "P", help: "import only this platform" },
        ],
        run: (a, ctx) => images().then((m) => m.imagesImport(a, ctx)),
      },
      {
        name: "export",
        summary: "write images as an OCI layout tarball (- for stdout)",
        args: "FILE|- REF…",
        min: 2,
        max: Infinity,
        flags: [
          { name: "platform", value: "P", help: "export only this platform" },
          { name: "all-platforms", help: "every platform of an index" },
        ],
        run: (a, ctx) => images().then((m) => m.imagesExport(a, ctx)),
      },
      {
        name: "check",
        summary: "is all of an image's content present, is it unpacked (exit 1 when not)",
        args: "[REF…]",
        ...ANY,
        flags: LIST_FLAGS,
        run: (a, ctx) => images().then((m) => m.imagesCheck(a, ctx)),
      },
    ],
  },
  {
    name: "content",
    summary: "blobs by digest",
    subcommands: [
      {
        name: "ls",
        aliases: ["list"],
        summary: "blobs this namespace holds",
        args: "[FILTER…]",
        ...ANY,
        flags: LIST_FLAGS,
        run: (a, ctx) => stores().then((m) => m.contentList(a, ctx)),
      },
      {
        name: "get",
        summary: "write a blob to stdout",
        args: "DIGEST",
        ...ONE,
        run: (a, ctx) => stores().then((m) => m.contentGet(a, ctx)),
      },
      {
        name: "rm",
        aliases: ["delete"],
        summary: "drop blobs from this namespace",
        args: "DIGEST…",
        ...SOME,
        run: (a, ctx) => stores().then((m) => m.contentRemove(a, ctx)),
      },
    ],
  },
  {
    name: "snapshots",
    aliases: ["snapshot"],
    summary: "unpacked layers and container roots",
    flags: [{ name: "snapshotter", value: "S", help: "which snapshotter (default overlayfs)" }],
    subcommands: [
      {
        name: "ls",
        aliases: ["list"],
        summary: "snapshots and their parents",
        flags: LIST_FLAGS,
        run: (a, ctx) => stores().then((m) => m.snapshotsList(a, ctx)),
      },
      {
        name: "mounts",
        summary: "print the mount command for a snapshot",
        args: "TARGET KEY",
        min: 2,
        max: 2,
        run: (a, ctx) => stores().then((m) => m.snapshotsMounts(a, ctx)),
      },
      {
        name: "rm",
        aliases: ["remove"],
        summary: "remove snapshots",
        args: "KEY…",
        ...SOME,
        run: (a, ctx) => stores().then((m) => m.snapshotsRemove(a, ctx)),
      },
    ],
  },
  {
    name: "namespaces",
    aliases: ["namespace", "ns"],
    summary: 'namespaces (the CLI\'s default is "default", the CRI\'s "k8s.io")',
    subcommands: [
      {
        name: "ls",
        aliases: ["list"],
        summary: "list namespaces",
        flags: LIST_FLAGS,
        run: (a, ctx) => stores().then((m) => m.namespacesList(a, ctx)),
      },
      {
        name: "create",
        summary: "create a namespace",
        args: "NAME",
        ...ONE,
        flags: [{ name: "label", value: "K=V", multiple: true, help: "a label" }],
        run: (a, ctx) => stores().then((m) => m.namespacesCreate(a, ctx)),
      },
      {
        name: "rm",
        aliases: ["remove"],
        summary: "remove empty namespaces",
        args: "NAME…",
        ...SOME,
        run: (a, ctx) => stores().then((m) => m.namespacesRemove(a, ctx)),
      },
    ],
  },
  {
    name: "leases",
    aliases: ["lease"],
    summary: "what keeps content from garbage collection",
    subcommands: [
      {
        name: "ls",
        aliases: ["list"],
        summary: "list leases",
        flags: LIST_FLAGS,
        run: (a, ctx) => stores().then((m) => m.leasesList(a, ctx)),
      },
      {
        name: "rm",
        aliases: ["remove"],
        summary: "remove leases",
        args: "ID…",
        ...SOME,
        flags: [{ name: "sync", help: "collect garbage now, before returning" }],
        run: (a, ctx) => stores().then((m) => m.leasesRemove(a, ctx)),
      },
    ],
  },
  {
    name: "run",
    summary:
      "create and start a container (pulling its image if missing); without -d, print its output, forward stdin and signals, exit with its exit code (127: no such command, 126: not executable). IMAGE ID [CMD…] as ctr; with --name, IMAGE [CMD…] as docker; IMAGE alone gets a generated id",
    args: "IMAGE [ID] [CMD…]",
    min: 1,
    max: 2,
    maxFor: (v) => v.has("name") ? 1 : 2,
    commandAfter: (v) => v.has("name") ? 1 : 2,
    flags: [
      { name: "name", value: "NAME", help: "the container's id (then no ID argument)" },
      { name: "rm", help: "remove the container when it exits" },
      { name: "detach", short: "d", help: "print the id and leave it running" },
      { name: "tty", short: "t", help: "an interactive terminal" },
      { name: "interactive", short: "i", help: "keep stdin open (with -d: for a later attach)" },
      DETACH_KEYS,
      {
        name: "sig-proxy",
        value: "true|false",
        choices: ["true", "false"],
        help:
          "pass SIGINT, SIGTERM, SIGHUP and SIGQUIT on to the task (default true, false with -t)",
      },
      { name: "env", short: "e", value: "K=V", multiple: true, help: "an environment variable" },
      {
        name: "mount",
        value: "type=bind,src=S,dst=D[,options=ro]",
        multiple: true,
        help: "a bind mount",
      },
      {
        name: "volume",
        short: "v",
        value: "SRC:DST[:ro]",
        multiple: true,
        help: "bind-mount host path SRC (absolute) at DST, read-only with :ro",
      },
      {
        name: "publish",
        short: "p",
        value: "[IP:]HOST:CTR[/tcp|udp]",
        multiple: true,
        help:
          "publish container port CTR on host port HOST (CNI portmap; bound to 127.0.0.1 unless IP is given); implies --net cni",
      },
      {
        name: "restart",
        value: "no|always|unless-stopped|on-failure[:N]",
        help:
          "start a new task when it exits (on-failure: after a non-zero exit, at most N times); backoff 100 ms doubling to 10 s; a stop by the user (tasks kill, tasks rm, rm -f) is not restarted; always and unless-stopped (unless the user stopped it) come back after a daemon restart",
      },
      {
        name: "net",
        value: "none|cni|host",
        choices: ["none", "cni", "host"],
        help:
          "none: only its own loopback (the default without -p); cni: its own netns on the first network in the daemon's [cri] cni_conf_dir (the default with -p); host: the host's",
      },
      { name: "net-host", help: "the host's network namespace (as --net host)" },
      { name: "user", short: "u", value: "U", help: "uid, name, uid:gid or name:group" },
      { name: "cwd", value: "DIR", help: "working directory" },
      { name: "runtime", value: "NAME", help: "runtime handler (default: the config's first)" },
      { name: "read-only", help: "a read-only root filesystem" },
      { name: "privileged", help: "all capabilities and devices" },
      { name: "label", value: "K=V", multiple: true, help: "a container label" },
      { name: "hostname", value: "NAME", help: "the container's hostname (default: its id)" },
    ],
    run: (a, ctx) => containers().then((m) => m.runCommand(a, ctx)),
  },
  {
    name: "containers",
    aliases: ["container", "c"],
    summary: "container records",
    subcommands: [
      {
        name: "ls",
        aliases: ["list"],
        summary: "list containers with their status (created, running, paused, stopped (exit N))",
        flags: [
          ...LIST_FLAGS,
          {
            name: "all-labels",
            short: "v",
            help: "also show the daemon's own io.k8scontainerd.* labels",
          },
        ],
        run: (a, ctx) => containers().then((m) => m.containersList(a, ctx)),
      },
      {
        name: "info",
        summary: "a container's record as JSON",
        args: "ID",
        ...ONE,
        run: (a, ctx) => containers().then((m) => m.containersInfo(a, ctx)),
      },
      {
        name: "rm",
        aliases: ["delete"],
        summary: "remove containers (no task may be left, unless -f), their root and their log",
        args: "ID…",
        ...SOME,
        flags: [{ name: "force", short: "f", help: "kill and delete a task first" }],
        run: (a, ctx) => containers().then((m) => m.containersRemove(a, ctx)),
      },
    ],
  },
  {
    name: "tasks",
    aliases: ["task", "t"],
    summary: "a container's running process",
    subcommands: [
      {
        name: "ls",
        aliases: ["list"],
        summary: "list tasks",
        flags: LIST_FLAGS,
        run: (a, ctx) => containers().then((m) => m.tasksList(a, ctx)),
      },
      {
        name: "start",
        summary: "start a container's task; one that exited, or was removed, starts anew",
        args: "ID",
        ...ONE,
        run: (a, ctx) => containers().then((m) => m.tasksStart(a, ctx)),
      },
      {
        name: "kill",
        summary: "signal a task",
        args: "ID",
        ...ONE,
        flags: [
          {
            name: "signal",
            short: "s",
            value: "S",
            help: "signal name or number (default SIGTERM)",
          },
          { name: "all", short: "a", help: "every process of the container" },
        ],
        run: (a, ctx) => containers().then((m) => m.tasksKill(a, ctx)),
      },
      {
        name: "exec",
        summary:
          "run a command in a running task (piped stdin is given to it; -i streams stdin live)",
        args: "ID CMD…",
        min: 1,
        max: 1,
        commandAfter: 1,
        commandRequired: true,
        flags: EXEC_FLAGS,
        run: (a, ctx) => containers().then((m) => m.tasksExec(a, ctx)),
      },
      {
        name: "ps",
        summary: "the task's processes: pid and command line (read from /proc on this host)",
        args: "ID",
        ...ONE,
        flags: LIST_FLAGS,
        run: (a, ctx) => containers().then((m) => m.tasksPs(a, ctx)),
      },
      {
        name: "pause",
        summary: "freeze a task",
        args: "ID",
        ...ONE,
        run: (a, ctx) => containers().then((m) => m.tasksPause(a, ctx)),
      },
      {
        name: "resume",
        summary: "thaw a task",
        args: "ID",
        ...ONE,
        run: (a, ctx) => containers().then((m) => m.tasksResume(a, ctx)),
      },
      {
        name: "metrics",
        summary:
          "CPU time, memory usage / limit, working set and pids: a table, or JSON (one ID: an object)",
        args: "ID…",
        ...SOME,
        flags: [LIST_FLAGS[1]],
        run: (a, ctx) => containers().then((m) => m.tasksMetrics(a, ctx)),
      },
      {
        name: "rm",
        aliases: ["delete"],
        summary: "remove a stopped task and print its exit status",
        args: "ID",
        ...ONE,
        flags: [{ name: "force", short: "f", help: "kill it first if it runs" }],
        run: (a, ctx) => containers().then((m) => m.tasksRemove(a, ctx)),
      },
    ],
  },
  {
    name: "attach",
    summary:
      "the container's terminal, or its output and stdin, until it exits or the detach keys (ctrl-p ctrl-q)",
    args: "ID",
    ...ONE,
    flags: [DETACH_KEYS],
    run: (a, ctx) => containers().then((m) => m.attachCommand(a, ctx)),
  },
  {
    name: "logs",
    summary: "a container's output (its CRI log, decoded)",
    args: "ID",
    ...ONE,
    flags: [
      { name: "follow", short: "f", help: "keep printing until the task exits" },
      { name: "tail", value: "N", help: "only the last N lines" },
    ],
    run: (a, ctx) => containers().then((m) => m.logsCommand(a, ctx)),
  },
  {
    name: "events",
    summary: "the event stream",
    args: "[TOPIC-PREFIX…]",
    ...ANY,
    flags: [{ name: "all-namespaces", help: "events of every namespace" }],
    run: (a, ctx) => containers().then((m) => m.eventsCommand(a, ctx)),
  },
  // Docker-style forms (nerdctl's), thin aliases over the commands above.
  {
    name: "ps",
    summary: "running containers with their status; -a: all of them (containers ls)",
    flags: [
      { name: "all", short: "a", help: "also created and stopped containers" },
      ...LIST_FLAGS,
      { name: "all-labels", help: "also show the daemon's own io.k8scontainerd.* labels" },
    ],
    run: (a, ctx) =>
      containers().then((m) => m.containersList(a, ctx, { runningOnly: !a.bool("all") })),
  },
  {
    name: "exec",
    summary: "run a command in a running container (tasks exec)",
    args: "ID CMD…",
    min: 1,
    max: 1,
    commandAfter: 1,
    commandRequired: true,
    flags: EXEC_FLAGS,
    run: (a, ctx) => containers().then((m) => m.tasksExec(a, ctx)),
  },
  {
    name: "rm",
    summary: "remove containers; -f kills and deletes a running task first (containers rm)",
    args: "ID…",
    ...SOME,
    flags: [{ name: "force", short: "f", help: "kill and delete a task first" }],
    run: (a, ctx) => containers().then((m) => m.containersRemove(a, ctx)),
  },
  {
    name: "pull",
    summary: "download and unpack an image (images pull)",
    args: "REF",
    ...ONE,
    flags: PULL_FLAGS,
    run: (a, ctx) => images().then((m) => m.imagesPull(a, ctx)),
  },
  {
    name: "rmi",
    summary: "remove image names (images rm)",
    args: "REF…",
    ...SOME,
    flags: [{ name: "sync", help: "collect garbage now, before returning" }],
    run: (a, ctx) => images().then((m) => m.imagesRemove(a, ctx)),
  },
  {
    name: "inspect",
    summary: "containers' records, or images' when no container has the name, as JSON",
    args: "NAME…",
    ...SOME,
    run: (a, ctx) => containers().then((m) => m.inspectCommand(a, ctx)),
  },
  {
    name: "stats",
    summary: "CPU, memory and pids of running containers (all, or the IDs given) (tasks metrics)",
    args: "[ID…]",
    ...ANY,
    flags: [LIST_FLAGS[1]],
    run: (a, ctx) => containers().then((m) => m.statsCommand(a, ctx)),
  },
  {
    name: "help",
    summary: "this text, or a command's help",
    args: "[COMMAND…]",
    ...ANY,
    // Answered by parseCommandLine itself.
  },
];

/** The flags before the command. */
export const GLOBAL_FLAGS: Flag[] = [
  {
    name: "address",
    short: "a",
    value: "SOCK",
    help: `daemon socket (default ${DEFAULT_ADDRESS}; env K8SCONTAINERD_ADDRESS)`,
  },
  {
    name: "namespace",
    short: "n",
    value: "NS",
    help:
      'namespace (default "default", env K8SCONTAINERD_NAMESPACE; CRI objects live in "k8s.io")',
  },
  { name: "version", short: "v", help: "print the client version" },
];

const HELP_FLAG: Flag = { name: "help", short: "h", help: "this help" };

/** What {@link parseCommandLine} decided. */
export type Parsed =
  | { kind: "help"; text: string; path: string[] }
  | { kind: "version" }
  | {
    kind: "run";
    path: string[];
    command: Command;
    args: Args;
    global: { address?: string; namespace?: string };
  };

function find(list: Command[], name: string): Command | undefined {
  return list.find((c) => c.name === name || c.aliases?.includes(name));
}

function helpHint(path: string[]): string {
  return `see 'k8scontainerd ${path.join(" ")}${path.length ? " " : ""}--help'`;
}

/**
 * Parses the flags of one level (the root, a group or a command) into `values`, stopping at
 * the first positional for groups; returns the remaining tokens.
 */
function parseLevel(
  tokens: string[],
  flags: Flag[],
  path: string[],
  o: { group: boolean; commandAfter?: Command["commandAfter"] },
): {
  values: Map<string, string | boolean | string[]>;
  positionals: string[];
  rest: string[];
  help: boolean;
} {
  const values = new Map<string, string | boolean | string[]>();
  const positionals: string[] = [];
  const after = () =>
    typeof o.commandAfter === "function" ? o.commandAfter(values) : o.commandAfter;
  const where = path.length ? `${path.join(" ")}: ` : "";
  const set = (f: Flag, v: string | boolean, shown: string) => {
    if (f.choices && !f.choices.includes(String(v))) {
      throw new UsageError(
        `${where}invalid ${shown} "${v}": expected ${f.choices.join(" or ")}`,
      );
    }
    if (f.multiple) values.set(f.name, [...((values.get(f.name) as string[]) ?? []), v as string]);
    else if (f.value === "true|false") values.set(f.name, v === "true");
    else values.set(f.name, v);
  };
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i];
    const commandAfter = after();
    if (commandAfter !== undefined && positionals.length === commandAfter) {
      return { values, positionals, rest: tokens.slice(i), help: false };
    }
    if (t === "--") {
      if (o.group) return { values, positionals, rest: tokens.slice(i + 1), help: false };
      const tail = tokens.slice(i + 1);
      if (commandAfter === undefined) {
        return { values, positionals: [...positionals, ...tail], rest: [], help: false };
      }
      const need = commandAfter - positionals.length;
      return {
        values,
        positionals: [...positionals, ...tail.slice(0, need)],
        rest: tail.slice(need),
        help: false,
      };
    }
    if (t === "--help" || t === "-h") return { values, positionals, rest: [], help: true };
    if (t.startsWith("--")) {
      const eq = t.indexOf("=");
      const name = eq < 0 ? t.slice(2) : t.slice(2, eq);
      const f = flags.find((x) => x.name === name);
      if (!f) throw new UsageError(`${where}unknown flag --${name} (${helpHint(path)})`);
      if (f.value === undefined) {
        if (eq < 0) set(f, true, `--${name}`);
        else {
          const v = t.slice(eq + 1);
          if (v !== "true" && v !== "false") {
            throw new UsageError(
              `${where}flag --${name} takes no value (or =true, =false), not "${v}"`,
            );
          }
          values.set(f.name, v === "true");
        }
      } else if (eq >= 0) set(f, t.slice(eq + 1), `--${name}`);
      else if (f.value === "true|false") set(f, "true", `--${name}`);
      else {
        if (i + 1 >= tokens.length) {
          throw new UsageError(`${where}flag --${name} needs a value (${f.value})`);
        }
        set(f, tokens[++i], `--${name}`);
      }
      continue;
    }
    if (t.startsWith("-") && t.length > 1) {
      // -it, -q, -n NS, -nNS
      for (let j = 1; j < t.length; j++) {
        const f = flags.find((x) => x.short === t[j]);
        if (!f) throw new UsageError(`${where}unknown flag -${t[j]} (${helpHint(path)})`);
        if (f.value === undefined || f.value === "true|false") {
          set(f, f.value === undefined ? true : "true", `-${t[j]}`);
          continue;
        }
        const v = j + 1 < t.length ? t.slice(j + 1) : tokens[++i];
        if (v === undefined) {
          throw new UsageError(`${where}flag -${t[j]} needs a value (${f.value})`);
        }
        set(f, v, `-${t[j]}`);
        break;
      }
      continue;
    }
    if (o.group) return { values, positionals, rest: tokens.slice(i), help: false };
    positionals.push(t);
  }
  return { values, positionals, rest: [], help: false };
}

/**
 * Parses a whole command line against {@link COMMANDS}. Throws {@link UsageError} naming what
 * was wrong (an unknown command or flag, a missing value, a bad --format, too many or too few
 * arguments).
 */
export function parseCommandLine(argv: string[]): Parsed {
  const root = parseLevel(argv, GLOBAL_FLAGS, [], { group: true });
  if (root.help) return { kind: "help", text: renderHelp([]), path: [] };
  if (root.values.get("version")) return { kind: "version" };
  const global = {
    address: root.values.get("address") as string | undefined,
    namespace: root.values.get("namespace") as string | undefined,
  };
  let tokens = root.rest;
  let list = COMMANDS;
  const path: string[] = [];
  const values = new Map<string, string | boolean | string[]>();
  // A group's flags (snapshots --snapshotter) go before its command, or after it.
  const groupFlags: Flag[] = [];
  for (;;) {
    const [name, ...rest] = tokens;
    if (name === undefined || (path.length > 0 && name === "help" && !find(list, "help"))) {
      // A bare group, or `GROUP help`: its help, as ctr prints it.
      return { kind: "help", text: renderHelp(path), path };
    }
    const cmd = find(list, name);
    if (!cmd) {
      throw new UsageError(
        path.length
          ? `unknown ${path.join(" ")} command "${name}" (${helpHint(path)})`
          : `unknown command "${name}" (${helpHint([])})`,
      );
    }
    path.push(cmd.name);
    if (cmd.name === "help" && path.length === 1) {
      const target = rest.some((w) => w === "-h" || w === "--help") ? path : resolvePath(rest);
      return { kind: "help", text: renderHelp(target), path: target };
    }
    const level = parseLevel(rest, [...(cmd.flags ?? []), ...groupFlags], path, {
      group: !!cmd.subcommands,
      commandAfter: cmd.commandAfter,
    });
    if (level.help) return { kind: "help", text: renderHelp(path), path };
    for (const [k, v] of level.values) values.set(k, v);
    if (cmd.subcommands) {
      groupFlags.push(...(cmd.flags ?? []));
      tokens = level.rest;
      list = cmd.subcommands;
      continue;
    }
    const min = cmd.min ?? 0, max = cmd.maxFor?.(values) ?? cmd.max ?? 0;
    const n = level.positionals.length;
    if (n < min || n > max) {
      const synopsis = `k8scontainerd ${path.join(" ")}${cmd.flags?.length ? " [FLAGS]" : ""}${
        cmd.args ? ` ${cmd.args}` : ""
      }`;
      const what = n < min
        ? `missing ${cmd.args?.split(" ")[n] ?? "an argument"}`
        : `unexpected argument "${level.positionals[max]}"`;
      throw new UsageError(`${path.join(" ")}: ${what} (usage: ${synopsis})`);
    }
    if (cmd.commandRequired && !level.rest.length) {
      throw new UsageError(
        `${path.join(" ")}: missing CMD (usage: k8scontainerd ${
          path.join(" ")
        } [FLAGS] ${cmd.args})`,
      );
    }
    return {
      kind: "run",
      path,
      command: cmd,
      args: new Args(values, level.positionals, level.rest),
      global,
    };
  }
}

/** `help images pull` → ["images", "pull"] (canonical names); unknown words are an error. */
function resolvePath(words: string[]): string[] {
  const path: string[] = [];
  let list = COMMANDS;
  for (const w of words) {
    const c = find(list, w);
    if (!c) throw new UsageError(`help: unknown command "${[...path, w].join(" ")}"`);
    path.push(c.name);
    list = c.subcommands ?? [];
  }
  return path;
}

function flagSynopsis(f: Flag): string {
  return `[--${f.name}${f.value ? ` ${f.value}` : ""}]${f.multiple ? "…" : ""}`;
}

const WIDTH = 100;

/** Words wrapped to {@link WIDTH} columns, continuation lines indented by `indent`. */
function wrap(first: string, words: string[], indent: string): string[] {
  const lines: string[] = [];
  let line = first;
  for (const w of words) {
    if (line.trim().length && line.length + 1 + w.length > WIDTH) {
      lines.push(line);
      line = indent + w;
    } else line = line.trim().length ? `${line} ${w}` : line + w;
  }
  lines.push(line);
  return lines;
}

function synopsisLines(prefix: string, c: Command, indent: string): string[] {
  const words = [
    ...(c.flags ?? []).map(flagSynopsis),
    ...(c.subcommands ? ["COMMAND"] : []),
    ...(c.args ? c.args.split(" ") : []),
  ];
  return wrap(`${prefix}${c.name}`, words, indent);
}

function commandLines(prefix: string, c: Command): string[] {
  if (c.subcommands) {
    return c.subcommands.filter((s) => !s.hidden).flatMap((s) =>
      commandLines(
        `${prefix}${c.name}${c.flags?.length ? ` ${c.flags.map(flagSynopsis).join(" ")}` : ""} `,
        s,
      )
    );
  }
  return [
    ...synopsisLines(prefix, c, " ".repeat(prefix.length + c.name.length + 1)),
    ...wrap("      ", c.summary.split(" "), "      "),
  ];
}

/**
 * The CLI reference: every command with its flags and what it does (README's CLI reference
 * block is exactly this text).
 */
export function renderReference(): string {
  const lines = [
    "k8scontainerd [--address SOCK] [-n NAMESPACE] COMMAND [ARGS…]",
    "",
    ...COMMANDS.filter((c) => !c.hidden).flatMap((c) => commandLines("  ", c)),
    "",
    "Global flags (before the command):",
    ...flagLines(GLOBAL_FLAGS),
    "",
    "Every command takes -h/--help. Exit codes: 0 success, 1 failure, 2 a usage mistake.",
  ];
  return lines.join("\n") + "\n";
}

function flagLines(flags: Flag[]): string[] {
  const names = flags.map((f) =>
    `  ${f.short ? `-${f.short}, ` : "    "}--${f.name}${f.value ? ` ${f.value}` : ""}`
  );
  // Help starts in one column; a name too long for it gets the help on the next line.
  const col = Math.min(36, Math.max(...names.map((n) => n.length)) + 3);
  const indent = " ".repeat(col);
  return flags.flatMap((f, i) => {
    const help = wrap(indent, f.help.split(" "), indent);
    if (names[i].length + 3 > col) return [names[i], ...help];
    return [names[i].padEnd(col) + help[0].trimStart(), ...help.slice(1)];
  });
}

/** Help for the root (`[]`), a group or a command, printed by `--help` and `help`. */
export function renderHelp(path: string[]): string {
  if (!path.length) return renderReference();
  let list = COMMANDS;
  let cmd: Command | undefined;
  const groupFlags: Flag[] = [];
  for (const name of path) {
    cmd = find(list, name)!;
    if (cmd.subcommands) groupFlags.push(...(cmd.flags ?? []));
    list = cmd.subcommands ?? [];
  }
  const c = cmd!;
  const full = `k8scontainerd ${path.join(" ")}`;
  const out: string[] = [];
  if (c.subcommands) {
    out.push(
      `Usage: ${full}${c.flags?.length ? " [FLAGS]" : ""} COMMAND [ARGS…]`,
      "",
      c.summary,
      "",
    );
    out.push("Commands:");
    for (const s of c.subcommands.filter((s) => !s.hidden)) out.push(...commandLines("  ", s));
    if (c.flags?.length) out.push("", "Flags:", ...flagLines(c.flags));
    out.push("", `Run '${full} COMMAND --help' for a command's flags.`);
  } else {
    out.push(...wrap(`Usage: ${full}`, [
      ...(c.flags?.length ? ["[FLAGS]"] : []),
      ...(c.args ? c.args.split(" ") : []),
    ], "         "));
    out.push("", ...wrap("", c.summary.split(" "), ""));
    if (c.aliases?.length) out.push("", `Aliases: ${c.aliases.join(", ")}`);
    const own = [...(c.flags ?? []), HELP_FLAG];
    out.push("", "Flags:", ...flagLines(own));
    if (groupFlags.length) {
      out.push("", `Flags of '${path.slice(0, -1).join(" ")}':`, ...flagLines(groupFlags));
    }
  }
  out.push("", "Global flags (before the command):", ...flagLines(GLOBAL_FLAGS));
  return out.join("\n") + "\n";
}

// `deno run -A src/cli/commands.ts --readme`: rewrites README's CLI reference block.
if (import.meta.main && Deno.args[0] === "--readme") {
  const path = new URL("../../README.md", import.meta.url);
  const s = Deno.readTextFileSync(path);
  const open = "## CLI reference\n\n```\n";
  const start = s.indexOf(open) + open.length;
  const end = s.indexOf("```\n", start);
  Deno.writeTextFileSync(path, s.slice(0, start) + renderReference() + s.slice(end));
}
