/**
 * The one executable: `k8scontainerd daemon …` runs the daemon, anything else is the CLI.
 * `deno compile` builds from this file, and scripts/k8scontainerd runs it from source.
 */
import { run } from "./cli/main.ts";

if (import.meta.main) {
  Deno.exit(await run(Deno.args));
}
