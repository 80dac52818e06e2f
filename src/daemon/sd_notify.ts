/**
 * systemd's readiness protocol (sd_notify(3)) for `Type=notify` units: systemd hands the
 * service a datagram socket in `NOTIFY_SOCKET`; the daemon sends `READY=1` once its socket
 * serves and `STOPPING=1` when it begins to stop. Without systemd it does nothing.
 *
 * The variable is taken out of the environment at once: runc reads `NOTIFY_SOCKET` too and,
 * finding it, would proxy it into every container and wait for the container's own READY.
 */
import { sendDatagram } from "../../ffi/socket.ts";
import type { Logger } from "../log/logger.ts";

/** Sends sd_notify states to the service manager that started us, if any. */
export interface Notifier {
  /** Sends `state` (e.g. "READY=1\nSTATUS=serving"); failures are logged, never thrown. */
  notify(state: string): void;
  /** The socket we report to, or undefined when not run by systemd as a notify service. */
  readonly socket?: string;
}

/**
 * Takes `NOTIFY_SOCKET` from the environment (removing it) and returns a notifier for it.
 *
 * @example
 * ```ts
 * import { systemdNotifier } from "./sd_notify.ts";
 * const n = systemdNotifier(log);
 * n.notify("READY=1");
 * ```
 */
export function systemdNotifier(log: Logger): Notifier {
  const socket = Deno.env.get("NOTIFY_SOCKET") || undefined;
  Deno.env.delete("NOTIFY_SOCKET");
  return {
    socket,
    notify(state: string) {
      if (!socket) return;
      try {
        sendDatagram(socket, new TextEncoder().encode(state));
      } catch (e) {
        log.warn("could not notify systemd", { socket, state, err: e });
      }
    },
  };
}
