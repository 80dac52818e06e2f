/**
 * `deno task compile`: builds the single executable for each target into dist/.
 *
 * `deno compile` needs a runtime binary ("denort") per target, which it downloads from
 * dl.deno.land. Offline, set DENORT_BIN to a denort for the host's architecture: only the host
 * target is built then (a denort serves one target). Without either, this stops and says so.
 *
 * @example
 * ```sh
 * deno task compile                                   # both targets, with internet
 * DENORT_BIN=/opt/denort deno task compile            # host target only, offline
 * deno task compile --target x86_64-unknown-linux-gnu # one target
 * ```
 */
import { fileURLToPath } from "node:url";
import { LAZY_MODULE_URLS } from "../src/cli/lazy.ts";

const root = fileURLToPath(new URL("..", import.meta.url));

/**
 * V8 flags the daemon runs with, for a small resident heap: a 1 MiB young generation (V8 lets it
 * grow to 16 MiB a semi-space, mostly empty) and V8's memory-over-speed heuristics (earlier
 * full collections, smaller heap growth). Measured with 50 pods: daemon PSS 126 → 70 MiB with
 * pod start unchanged. No Sparkplug (the baseline compiler's code is kept beside the bytecode
 * of every warm function): 5 MiB less after two critest runs, pod start and reads unchanged. The same flags are in scripts/k8scontainerd (daemon only) and deno.json's
 * `start` task; scripts/v8_flags_test.ts keeps the three equal. A compiled binary embeds them
 * for every command (deno compile has no per-command flags).
 */
export const DAEMON_V8_FLAGS = "--max-semi-space-size=1,--optimize-for-size,--no-sparkplug";

export const TARGETS = {
  "x86_64-unknown-linux-gnu": "dist/k8scontainerd-x86_64-linux",
  "aarch64-unknown-linux-gnu": "dist/k8scontainerd-aarch64-linux",
} as const;
type Target = keyof typeof TARGETS;

/** The target triple of the machine running this. */
export function hostTarget(): Target {
  return Deno.build.arch === "aarch64" ? "aarch64-unknown-linux-gnu" : "x86_64-unknown-linux-gnu";
}

async function revision(): Promise<string> {
  try {
    const out = await new Deno.Command("git", {
      args: ["rev-parse", "--short=12", "HEAD"],
      cwd: root,
      stderr: "null",
    }).output();
    return out.success ? new TextDecoder().decode(out.stdout).trim() : "unknown";
  } catch {
    return "unknown";
  }
}

/** Builds one target; returns the output path. Throws with deno compile's own message on failure. */
export async function compile(target: Target): Promise<string> {
  const output = `${root}${TARGETS[target]}`;
  const rev = await revision();
  // The revision is baked in through an env file that deno compile embeds.
  const envFile = await Deno.makeTempFile({ suffix: ".env" });
  await Deno.writeTextFile(envFile, `K8SCONTAINERD_REVISION=${rev}\n`);
  try {
    const res = await new Deno.Command(Deno.execPath(), {
      args: [
        "compile",
        "--allow-all",
        "--no-prompt",
        `--config=${root}deno.json`,
        `--env-file=${envFile}`,
        `--v8-flags=${DAEMON_V8_FLAGS}`,
        // The CLI loads these by specifiers built at run time, which compile cannot follow.
        ...LAZY_MODULE_URLS.map((u) => `--include=${fileURLToPath(u)}`),
        "--target",
        target,
        "--output",
        output,
        `${root}src/main.ts`,
      ],
      cwd: root,
      stdout: "inherit",
      stderr: "piped",
    }).output();
    const err = new TextDecoder().decode(res.stderr);
    if (!res.success) {
      const hint = Deno.env.get("DENORT_BIN")
        ? `DENORT_BIN=${Deno.env.get("DENORT_BIN")} did not work for ${target}`
        : `no denort runtime for ${target} could be had (deno compile downloads it from dl.deno.land); ` +
          `set DENORT_BIN to a denort binary for this host's architecture to build offline`;
      throw new Error(`compile ${target} failed: ${hint}\n${err.trim()}`);
    }
    return output;
  } finally {
    await Deno.remove(envFile);
  }
}

if (import.meta.main) {
  const i = Deno.args.indexOf("--target");
  let targets: Target[];
  if (i >= 0) {
    const t = Deno.args[i + 1];
    if (!(t in TARGETS)) {
      console.error(`unknown target "${t}": expected one of ${Object.keys(TARGETS).join(", ")}`);
      Deno.exit(2);
    }
    targets = [t as Target];
  } else if (Deno.env.get("DENORT_BIN")) {
    targets = [hostTarget()];
    console.error(
      `DENORT_BIN is set: building the host target ${hostTarget()} only (a denort serves one target)`,
    );
  } else {
    targets = Object.keys(TARGETS) as Target[];
  }
  for (const t of targets) {
    try {
      console.log(`built ${await compile(t)}`);
    } catch (e) {
      console.error((e as Error).message);
      Deno.exit(1);
    }
  }
}
