/**
 * Whether a stopped container was OOM-killed. conmon writes an `oom` file in the container's
 * state directory when the memory cgroup reports a kill; under the systemd cgroup driver that
 * can be missed, and systemd's journal is asked as well (see {@link oomKilled}).
 *
 * @example
 * ```ts
 * import { oomKilled } from "./oom_killed.ts";
 * const dir = "/run/k8scontainerd/runtime/default/c1";
 * if (await oomKilled(`${dir}/oom`, 137, "kubepods-c1.scope")) console.log("OOMKilled");
 * ```
 *
 * @module
 */

/**
 * Whether the container was OOM-killed: conmon's `oom` file (at `oomFile`); under the systemd
 * driver (`systemdScope` set) also systemd's own record. There systemd removes the scope's
 * cgroup as soon as its last process dies, which can beat conmon to reading `memory.events`;
 * systemd itself has seen the kill and logged it for the scope ("A process of this unit has been
 * killed by the OOM killer", in the journal since systemd 243). The verdict is written down
 * once (`oom` or `oom-checked`), so later reads agree.
 */
export async function oomKilled(
  oomFile: string,
  exitCode: number,
  systemdScope?: string,
): Promise<boolean> {
  if (await exists(oomFile)) return true;
  // A SIGKILL (128+9) is what the OOM killer sends; nothing else is worth asking about.
  if (exitCode !== 137 || !systemdScope || await exists(`${oomFile}-checked`)) return false;
  let oom = false;
  // systemd handles the cgroup's memory.events notification on its own schedule: a moment.
  for (let i = 0; i < 5 && !oom; i++) {
    if (i) await new Promise((r) => setTimeout(r, 100));
    const log = await command("journalctl", [
      "--quiet",
      "--no-pager",
      "--output=cat",
      `--unit=${systemdScope}`,
    ]);
    oom = !!log?.includes("killed by the OOM killer");
  }
  await Deno.writeTextFile(oom ? oomFile : `${oomFile}-checked`, "").catch(() => {});
  return oom;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

/** Runs a command; its stdout, or undefined when it could not run or failed. */
async function command(cmd: string, args: string[]): Promise<string | undefined> {
  try {
    const o = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "null" }).output();
    return o.success ? new TextDecoder().decode(o.stdout) : undefined;
  } catch {
    return undefined;
  }
}
