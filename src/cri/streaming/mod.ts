/**
 * The CRI streaming server (exec, attach, port-forward URLs) and the SPDY client used by
 * tests and the e2e suite.
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
