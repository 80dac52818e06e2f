/**
 * Test helper run as a separate Deno process (the "daemon" that goes away): creates and starts
 * a container through ConmonRuntime, prints `started <pid>`, then waits to be killed.
 *
 * @example
 * ```sh
 * deno run -A create_and_exit.ts <stateDir> <bundle> <id> <logPath> [runtimePath]
 * ```
 *
 * `runtimePath` replaces /usr/bin/runc (a wrapper that holds `runc create` back lets the test
 * kill this process mid-create).
 *
 * @module
 */
import { ConmonRuntime } from "../driver.ts";

const [stateDir, bundle, id, logPath, runtimePath] = Deno.args;
const rt = new ConmonRuntime({
  stateDir,
  handlers: { runc: { name: "runc", path: runtimePath ?? "/usr/bin/runc" } },
});
const { pid } = await rt.create({
  id,
  namespace: "test",
  bundle,
  logPath,
  tty: false,
  stdin: false,
  stdinOnce: false,
});
await rt.start(id, "test");
console.log(`started ${pid}`);
// Stay until the test kills this process: the container must outlive it. A pending timer keeps
// Deno alive (a bare never-settling promise does not: Deno exits at once with "Top-level await
// promise never resolved", racing the test's SIGKILL).
setInterval(() => {}, 1 << 30);
