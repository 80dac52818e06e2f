/**
 * The commands that are not calls of one management service: `daemon` (runs the daemon in
 * this process), `version` (client, then daemon) and `config` (reads the config file).
 */
import { REVISION, VERSION } from "../version.ts";
import type { Args, Context } from "./commands.ts";
import { load } from "./lazy.ts";

function print(text: string): number {
  Deno.stdout.writeSync(new TextEncoder().encode(text));
  return 0;
}

/** `daemon [--config F] [--root D] …`: serves until SIGTERM or SIGINT. */
export async function daemonCommand(a: Args, ctx: Context): Promise<number> {
  const { loadConfig } = await load("config");
  const config = await loadConfig({
    path: a.str("config"),
    overrides: {
      root: a.str("root"),
      state: a.str("state"),
      address: a.str("address") ?? (ctx.addressGiven ? ctx.address : undefined),
      logLevel: a.str("log-level"),
      metricsAddress: a.str("metrics-address"),
    },
  });
  const { createLogger, parseLevel } = await load("logger");
  const log = createLogger({ level: parseLevel(config.log.level) });
  // Loaded only here: client commands start faster without the daemon's stores.
  const { runDaemon } = await load("daemon");
  try {
    await runDaemon(config, log);
  } catch (e) {
    log.fatal("daemon failed", { err: e });
    return 1;
  }
  return 0;
}

/** `version`: the client's version, then the daemon's (exit 1 when it cannot be reached). */
export async function versionCommand(_a: Args, ctx: Context): Promise<number> {
  print(
    `Client:\n  Version:  ${VERSION}\n  Revision: ${REVISION}\n  Deno:     ${Deno.version.deno}\n\n`,
  );
  const c = await ctx.client();
  const v = await c.unary("version", "version", {});
  return print(
    `Server:\n  Version:  ${v.version}\n  Revision: ${v.revision}\n  Runtime:  ${v.runtime}\n`,
  );
}

/** `config default`: the full default configuration as TOML. */
export async function configDefault(_a: Args, _ctx: Context): Promise<number> {
  return print((await load("config")).renderDefaultConfig());
}

/** `config check [FILE]`: loads and validates the file; the error names what is wrong. */
export async function configCheck(a: Args, _ctx: Context): Promise<number> {
  const { DEFAULT_CONFIG_PATH, loadConfig } = await load("config");
  const path = a.positionals[0] ?? DEFAULT_CONFIG_PATH;
  await loadConfig({ path });
  return print(`${path}: ok\n`);
}
