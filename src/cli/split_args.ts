/**
 * Splits `[flags…] POSITIONAL… [COMMAND ARGS…]` so that flags after the command belong to the
 * command (`run busybox c1 sh -c 'echo'`): flags are parsed only up to the `n`-th positional.
 *
 * @example
 * ```ts
 * splitAtCommand(["--rm", "img", "id", "sh", "-c", "x"], 2, new Set(["--env"]));
 * // { head: ["--rm", "img", "id"], command: ["sh", "-c", "x"] }
 * ```
 */
export function splitAtCommand(
  args: string[],
  positionals: number,
  valueFlags: Set<string>,
): { head: string[]; command: string[] } {
  let seen = 0;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === "--") return { head: args.slice(0, i), command: args.slice(i + 1) };
    if (a.startsWith("-") && a !== "-") {
      if (valueFlags.has(a)) i++; // "--env K=V": the value is not a positional
      continue;
    }
    if (++seen === positionals) return { head: args.slice(0, i + 1), command: args.slice(i + 1) };
  }
  return { head: args, command: [] };
}
