/**
 * The command line: `k8scontainerd [--address SOCK] [-n NS] COMMAND …`. `daemon` runs the
 * daemon in this process; every other command is a plain client of the management API (it
 * never opens the database or the state directory itself), except `doctor` and `config`,
 * which look at the host and the config file.
 *
 * Commands and flags come from one table (./commands.ts), which parses and prints help alike.
 * This module imports only that table: a command's code, and the gRPC client, load when the
 * command runs, so help and usage errors stay fast.
 */
import { DEFAULT_ADDRESS, parseCommandLine } from "./commands.ts";
import type { DaemonClient } from "./client.ts";
import { UsageError } from "./usage_error.ts";
import { load } from "./lazy.ts";
import { REVISION, VERSION } from "../version.ts";
export { UsageError };

function print(text: string): number {
  Deno.stdout.writeSync(new TextEncoder().encode(text));
  return 0;
}

/** Runs one CLI invocation; returns the process exit code. */
export async function main(argv: string[]): Promise<number> {
  // Internal: the daemon runs this under nsenter for port-forward.
  if (argv[0] === "__relay") return await (await load("relay")).relayCommand(argv.slice(1));
  const p = parseCommandLine(argv);
  if (p.kind === "help") {
    return print(
      p.path.length
        ? p.text
        : `k8scontainerd ${VERSION}: a Kubernetes container runtime (CRI v1) with a ctr-like CLI\n\n${p.text}`,
    );
  }
  if (p.kind === "version") return print(`k8scontainerd ${VERSION} (${REVISION})\n`);
  const address = p.global.address ?? Deno.env.get("K8SCONTAINERD_ADDRESS") ?? DEFAULT_ADDRESS;
  const namespace = p.global.namespace ?? Deno.env.get("K8SCONTAINERD_NAMESPACE") ?? "default";
  let client: DaemonClient | undefined;
  try {
    return await p.command.run!(p.args, {
      address,
      addressGiven: p.global.address !== undefined,
      namespace,
      client: async () => client ??= await (await load("client")).connect(address, namespace),
    });
  } finally {
    client?.close();
  }
}

/** Entry point wrapper: prints errors the way an operator wants to read them. */
export async function run(argv: string[]): Promise<number> {
  try {
    return await main(argv);
  } catch (e) {
    console.error(`k8scontainerd: ${e instanceof Error ? e.message : String(e)}`);
    return e instanceof UsageError ? 2 : 1;
  }
}
