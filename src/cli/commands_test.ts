import { describe, expect, it } from "../testing/bdd.ts";
import {
  type Command,
  COMMANDS,
  DEFAULT_ADDRESS,
  DEFAULT_CONFIG_FILE,
  parseCommandLine,
  renderReference,
} from "./commands.ts";
import { DEFAULT_CONFIG_PATH, defaultConfig } from "../config/config.ts";
import { UsageError } from "./usage_error.ts";
import { TASK_STATUS } from "./containers.ts";
import { KIND_NAMES } from "./stores.ts";
import { Status } from "../gen/k8scontainerd/services/tasks/v1/tasks.ts";
import { Kind } from "../gen/k8scontainerd/services/snapshots/v1/snapshots.ts";

/** The modules `file` loads before any dynamic import(): its static graph, per `deno info`. */
async function staticGraph(file: string): Promise<string[]> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "info",
      "--json",
      "--config",
      new URL("../../deno.json", import.meta.url).pathname,
      file,
    ],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  const info = JSON.parse(new TextDecoder().decode(out.stdout)) as {
    roots: string[];
    modules: {
      specifier: string;
      dependencies?: { isDynamic?: boolean; code?: { specifier: string } }[];
    }[];
  };
  const byName = new Map(info.modules.map((m) => [m.specifier, m]));
  const seen = new Set<string>();
  const pending = [...info.roots];
  while (pending.length) {
    const s = pending.pop()!;
    if (seen.has(s)) continue;
    seen.add(s);
    for (const d of byName.get(s)?.dependencies ?? []) {
      if (!d.isDynamic && d.code) pending.push(d.code.specifier);
    }
  }
  return [...seen];
}

function leaves(list: Command[], path: string[] = []): string[][] {
  return list.flatMap((c) =>
    c.subcommands ? leaves(c.subcommands, [...path, c.name]) : [[...path, c.name]]
  );
}

function usageError(argv: string[]): string {
  try {
    parseCommandLine(argv);
  } catch (e) {
    expect(e).toBeInstanceOf(UsageError);
    return (e as Error).message;
  }
  throw new Error(`${argv.join(" ")} parsed`);
}

describe("CLI command table", () => {
  it("is what README's CLI reference shows", async () => {
    const readme = await Deno.readTextFile(new URL("../../README.md", import.meta.url));
    const block = readme.split("## CLI reference\n\n```\n")[1]?.split("```\n")[0];
    expect(block).toBe(renderReference());
  });

  it("agrees with the config's defaults", () => {
    expect(DEFAULT_ADDRESS).toBe(defaultConfig().grpc.address);
    expect(DEFAULT_CONFIG_FILE).toBe(DEFAULT_CONFIG_PATH);
  });

  it("gives every command a handler and --help", () => {
    for (const path of leaves(COMMANDS)) {
      const p = parseCommandLine([...path, "--help"]);
      expect(p.kind).toBe("help");
      if (p.kind === "help") {
        expect(p.text).toContain(`Usage: k8scontainerd ${path.join(" ")}`);
        expect(p.text).toContain("-h, --help");
      }
      if (path[0] === "help") continue;
      let c: Command | undefined, list = COMMANDS;
      for (const name of path) list = (c = list.find((x) => x.name === name)!).subcommands ?? [];
      expect({ path, run: typeof c?.run }).toEqual({ path, run: "function" });
    }
    for (const c of COMMANDS) expect(renderReference()).toContain(`  ${c.name}`);
  });

  it("parses flags, clusters, inline values and the command line after the positionals", () => {
    const p = parseCommandLine([
      "-n",
      "k8s.io",
      "run",
      "-it",
      "--env",
      "A=1",
      "-e=B=2",
      "--sig-proxy=false",
      "img",
      "id",
      "sh",
      "-c",
      "echo --rm",
    ]);
    if (p.kind !== "run") throw new Error(p.kind);
    expect(p.global.namespace).toBe("k8s.io");
    expect(p.path).toEqual(["run"]);
    expect(p.args.bool("tty")).toBe(true);
    expect(p.args.bool("interactive")).toBe(true);
    expect(p.args.list("env")).toEqual(["A=1", "=B=2"]);
    expect(p.args.bool("sig-proxy")).toBe(false);
    expect(p.args.positionals).toEqual(["img", "id"]);
    expect(p.args.command).toEqual(["sh", "-c", "echo --rm"]);
    const s = parseCommandLine(["snapshots", "ls", "--snapshotter=native", "-q"]);
    if (s.kind !== "run") throw new Error(s.kind);
    expect(s.args.str("snapshotter")).toBe("native");
    expect(parseCommandLine(["i", "list"]).kind).toBe("run"); // aliases
  });

  it("run: ctr's IMAGE ID [CMD…], docker's --name N IMAGE [CMD…], or IMAGE alone", () => {
    const run = (argv: string[]) => {
      const p = parseCommandLine(["run", ...argv]);
      if (p.kind !== "run") throw new Error("not run");
      return { pos: p.args.positionals, cmd: p.args.command, name: p.args.str("name") };
    };
    expect(run(["img", "id", "echo", "-n"])).toEqual({
      pos: ["img", "id"],
      cmd: ["echo", "-n"],
      name: undefined,
    });
    expect(run(["--name", "n", "img", "echo", "-n"])).toEqual({
      pos: ["img"],
      cmd: ["echo", "-n"],
      name: "n",
    });
    expect(run(["img", "--name", "n", "sh"])).toEqual({ pos: ["img"], cmd: ["sh"], name: "n" });
    expect(run(["-d", "img"])).toEqual({ pos: ["img"], cmd: [], name: undefined });
  });

  it("refuses what it does not know, naming it", () => {
    expect(usageError(["version", "--bogus"])).toBe(
      "version: unknown flag --bogus (see 'k8scontainerd version --help')",
    );
    expect(usageError(["containers", "rm", "--bogus", "x"])).toMatch(/unknown flag --bogus/);
    expect(usageError(["images", "ls", "--format", "yaml"])).toBe(
      'images ls: invalid --format "yaml": expected table or json',
    );
    expect(usageError(["tasks", "nope"])).toMatch(/unknown tasks command "nope"/);
    expect(usageError(["run"])).toMatch(/run: missing IMAGE/);
    expect(usageError(["tasks", "exec", "c"])).toMatch(/tasks exec: missing CMD/);
    expect(usageError(["tasks", "start", "a", "b"])).toMatch(/unexpected argument "b"/);
    expect(usageError(["logs", "--tail"])).toMatch(/flag --tail needs a value/);
    expect(usageError(["run", "--rm=yes", "i", "c"])).toMatch(/--rm takes no value/);
  });

  it("loads no gRPC code for help or a usage error (commands load the client on first call)", async () => {
    // main.ts prints help and usage errors; a command's module may still find a usage error
    // before its first call (run --rm -d, a bad --label).
    for (
      const file of ["../main.ts", "./main.ts", "./containers.ts", "./images.ts", "./stores.ts"]
    ) {
      const graph = await staticGraph(new URL(file, import.meta.url).pathname);
      expect({ file, grpc: graph.filter((m) => /@grpc|\/gen\//.test(m) && !m.endsWith(".d.ts")) })
        .toEqual({ file, grpc: [] });
    }
    expect(TASK_STATUS).toEqual({
      [Status.UNKNOWN]: "UNKNOWN",
      [Status.CREATED]: "CREATED",
      [Status.RUNNING]: "RUNNING",
      [Status.STOPPED]: "STOPPED",
      [Status.PAUSED]: "PAUSED",
    });
    expect(KIND_NAMES).toEqual({
      [Kind.VIEW]: "View",
      [Kind.ACTIVE]: "Active",
      [Kind.COMMITTED]: "Committed",
    });
  });
});
