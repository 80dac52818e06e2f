/**
 * The streaming server (the exec, attach and port-forward URLs of the CRI and of management
 * tasks) and the SPDY client the CLI, tests and the e2e suite use. It sits below both APIs and
 * imports only the logger and the typed errors.
 *
 * @example
 * ```ts
 * import { StreamingServer, remoteCommand } from "./mod.ts";
 * const server = new StreamingServer({
 *   backend: { exec: async () => 0, attach: async () => {}, portForward: async () => {} },
 * });
 * await server.start();
 * const url = server.getExecUrl({
 *   containerId: "c", cmd: ["true"], tty: false, stdin: false, stdout: true, stderr: false,
 * });
 * console.log((await remoteCommand(url, { stdout: true })).exitCode); // 0
 * await server.stop();
 * ```
 */
export * from "./server.ts";
export * from "./backend.ts";
export * from "./client.ts";
export type { RemoteStatus } from "./remotecommand.ts";
export { exitStatus, internalErrorStatus, successStatus } from "./remotecommand.ts";
export { SpdyConnection, SpdyStream } from "./spdy.ts";
