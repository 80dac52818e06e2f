/**
 * Network interface flags through ioctl(2) (SIOCGIFFLAGS / SIOCSIFFLAGS, 0x8913 / 0x8914 on
 * both x86_64 and aarch64): what `ip link set NAME up` does, in the calling thread's network
 * namespace, without a process. The pod network brings a pod's `lo` up with it (inside
 * `withNetns`) instead of running the loopback CNI plugin, a Go binary, on every pod start and
 * stop.
 *
 * `struct ifreq` is 40 bytes on 64-bit Linux: the name (IFNAMSIZ 16, NUL-terminated), then a
 * union whose `short ifr_flags` sits at offset 16.
 *
 * @example
 * ```ts
 * import { linkFlags, setLinkUp, IFF_UP } from "./netdev.ts";
 * setLinkUp("lo");
 * (linkFlags("lo") & IFF_UP) !== 0; // true
 * ```
 *
 * @module
 */

import { lastError } from "./errno.ts";
import { close } from "./fs.ts";
import { libc } from "./libc.ts";
import { AF_INET, SOCK_CLOEXEC, SOCK_DGRAM, socket } from "./socket.ts";

/** ioctl: read an interface's flags. */
export const SIOCGIFFLAGS = 0x8913;
/** ioctl: write an interface's flags. */
export const SIOCSIFFLAGS = 0x8914;
/** Interface flag: administratively up. */
export const IFF_UP = 0x1;
/** Interface flag: a loopback device. */
export const IFF_LOOPBACK = 0x8;
/** Interface flag: the driver has resources allocated (the link works). */
export const IFF_RUNNING = 0x40;

const IFNAMSIZ = 16;
const IFREQ_SIZE = 40;
const FLAGS_OFFSET = 16;

function ifreq(name: string): Uint8Array {
  const bytes = new TextEncoder().encode(name);
  if (bytes.length === 0 || bytes.length >= IFNAMSIZ || bytes.includes(0) || name.includes("/")) {
    throw new RangeError(`invalid interface name ${JSON.stringify(name)}`);
  }
  const req = new Uint8Array(IFREQ_SIZE);
  req.set(bytes);
  return req;
}

/** The socket's network namespace is the calling thread's at creation: one per call. */
function withInetSocket<T>(fn: (fd: number) => T): T {
  const fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC);
  try {
    return fn(fd);
  } finally {
    close(fd);
  }
}

function getFlags(fd: number, name: string, req: Uint8Array): number {
  if (libc().ioctl(fd, BigInt(SIOCGIFFLAGS), req) < 0) {
    throw lastError("ioctl", undefined, `SIOCGIFFLAGS ${name}`);
  }
  return new DataView(req.buffer).getUint16(FLAGS_OFFSET, true);
}

/**
 * The flags (IFF_*) of interface `name` in the calling thread's network namespace; throws
 * ENODEV when there is no such interface.
 *
 * @example
 * ```ts
 * import { IFF_LOOPBACK, linkFlags } from "./netdev.ts";
 * (linkFlags("lo") & IFF_LOOPBACK) !== 0; // true
 * ```
 */
export function linkFlags(name: string): number {
  const req = ifreq(name);
  return withInetSocket((fd) => getFlags(fd, name, req));
}

/**
 * Sets interface `name` administratively up (keeping its other flags) in the calling thread's
 * network namespace. Needs CAP_NET_ADMIN there; an interface already up is left as it is.
 *
 * @example
 * ```ts
 * import { withNetns } from "./namespaces.ts";
 * import { setLinkUp } from "./netdev.ts";
 * withNetns("/run/netns/pod1", () => setLinkUp("lo"));
 * ```
 */
export function setLinkUp(name: string): void {
  const req = ifreq(name);
  withInetSocket((fd) => {
    const flags = getFlags(fd, name, req);
    if (flags & IFF_UP) return;
    new DataView(req.buffer).setUint16(FLAGS_OFFSET, flags | IFF_UP, true);
    if (libc().ioctl(fd, BigInt(SIOCSIFFLAGS), req) < 0) {
      throw lastError("ioctl", undefined, `SIOCSIFFLAGS ${name} up`);
    }
  });
}
