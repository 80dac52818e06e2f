/**
 * AF_UNIX sockets the way Deno's own API cannot make them: `SOCK_SEQPACKET` (conmon's attach
 * socket), raw descriptors, and descriptor passing with `SCM_RIGHTS` (a console master from an
 * OCI runtime). Structure layouts are those of 64-bit Linux, identical on x86_64 and aarch64:
 *
 * ```
 * sockaddr_un { u16 sun_family; char sun_path[108]; }                    110 bytes
 * iovec       { void *base; u64 len; }                                   16 bytes
 * msghdr      { void *name; u32 namelen; pad; iovec *iov; u64 iovlen;
 *               void *control; u64 controllen; i32 flags; pad }          56 bytes
 * cmsghdr     { u64 len; i32 level; i32 type; data… }                    16 + data
 * pollfd      { i32 fd; i16 events; i16 revents; }                       8 bytes
 * ```
 *
 * Waiting is asynchronous ({@link pollAsync}, a `nonblocking` FFI call on a worker thread);
 * the I/O itself ({@link readAsync}, {@link writeAsync}, {@link acceptAsync},
 * {@link recvFdAsync}) runs on the JS thread once `poll` says it will not block, so errno is
 * read reliably. Descriptors are closed with `close` from `./fs.ts`.
 *
 * @example
 * ```ts
 * import { AF_UNIX, connectUnix, readAsync, SOCK_CLOEXEC, SOCK_SEQPACKET, socket } from "./socket.ts";
 * const fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC);
 * connectUnix(fd, "/run/x/attach");
 * const buf = new Uint8Array(8193);
 * const n = await readAsync(fd, buf); // one packet
 * ```
 *
 * @module
 */

import { lastError, SyscallError } from "./errno.ts";
import { errno, libc, libcAsync, toNumber } from "./libc.ts";

/** Address family: unix domain sockets. */
export const AF_UNIX = 1;
/** Address family: IPv4 (also what interface ioctls are issued on). */
export const AF_INET = 2;
/** Socket type: reliable byte stream. */
export const SOCK_STREAM = 1;
/** Socket type: reliable, ordered, message-boundary-preserving packets. */
export const SOCK_SEQPACKET = 5;
/** Socket type: datagrams (systemd's notify socket). */
export const SOCK_DGRAM = 2;
/** Flag for socket(2)/accept4(2): close-on-exec. */
export const SOCK_CLOEXEC = 0o2000000;
/** Flag for socket(2)/accept4(2): nonblocking. */
export const SOCK_NONBLOCK = 0o4000;
/** shutdown(2): no more receptions. */
export const SHUT_RD = 0;
/** shutdown(2): no more transmissions (the peer reads end-of-file). */
export const SHUT_WR = 1;
/** shutdown(2): both. */
export const SHUT_RDWR = 2;
/** Socket-level control messages. */
export const SOL_SOCKET = 1;
/** Control message type: passing file descriptors. */
export const SCM_RIGHTS = 1;
/** recvmsg(2) flag: received descriptors get close-on-exec. */
export const MSG_CMSG_CLOEXEC = 0x40000000;
/** send/sendmsg flag: no SIGPIPE on a closed peer (EPIPE instead). */
export const MSG_NOSIGNAL = 0x4000;
/** poll(2) events. */
export const POLLIN = 0x1;
/** poll(2): writable. */
export const POLLOUT = 0x4;
/** poll(2): error condition (revents only). */
export const POLLERR = 0x8;
/** poll(2): hang up (revents only). */
export const POLLHUP = 0x10;
/** poll(2): invalid descriptor (revents only). */
export const POLLNVAL = 0x20;

const SUN_PATH_MAX = 108;
const SOCKADDR_UN_SIZE = 110;
const EINTR = 4;
const EAGAIN = 11;

const encoder = new TextEncoder();

function sockaddrUn(path: string, call: string): Uint8Array<ArrayBuffer> {
  const bytes = encoder.encode(path);
  if (bytes.includes(0)) throw new TypeError(`socket path contains a NUL byte: ${path}`);
  if (bytes.length >= SUN_PATH_MAX) {
    throw new SyscallError(call, 36, /* ENAMETOOLONG */ path, `longer than ${SUN_PATH_MAX - 1}`);
  }
  const addr = new Uint8Array(SOCKADDR_UN_SIZE);
  new DataView(addr.buffer).setUint16(0, AF_UNIX, true);
  addr.set(bytes, 2);
  return addr;
}

/**
 * An address for a path or, when it starts with "@", for the abstract namespace (a leading
 * NUL; the length then counts exactly, since trailing NULs would be part of the name).
 */
function sockaddrAny(path: string, call: string): [Uint8Array<ArrayBuffer>, number] {
  if (!path.startsWith("@")) return [sockaddrUn(path, call), SOCKADDR_UN_SIZE];
  const name = encoder.encode(path.slice(1));
  if (name.length >= SUN_PATH_MAX) {
    throw new SyscallError(call, 36, /* ENAMETOOLONG */ path, `longer than ${SUN_PATH_MAX - 1}`);
  }
  const addr = new Uint8Array(SOCKADDR_UN_SIZE);
  new DataView(addr.buffer).setUint16(0, AF_UNIX, true);
  addr.set(name, 3);
  return [addr, 3 + name.length];
}

/**
 * Sends one datagram to an AF_UNIX datagram socket at `path` ("@name" for an abstract one) and
 * closes the sending socket: the whole of sd_notify(3)'s transport.
 *
 * @example
 * ```ts
 * import { sendDatagram } from "./socket.ts";
 * sendDatagram(Deno.env.get("NOTIFY_SOCKET")!, new TextEncoder().encode("READY=1"));
 * ```
 */
export function sendDatagram(path: string, data: Uint8Array): void {
  const fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC);
  try {
    const [addr, len] = sockaddrAny(path, "connect");
    if (libc().connect(fd, addr, len) < 0) throw lastError("connect", path);
    const buf = new Uint8Array(data);
    const n = toNumber(libc().write(fd, buf, BigInt(buf.length)));
    if (n < 0) throw lastError("write", path);
  } finally {
    libc().close(fd);
  }
}

function ptr(buf: Uint8Array<ArrayBuffer> | null): bigint {
  if (buf === null || buf.length === 0) return 0n;
  return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buf)));
}

/**
 * Calls socket(2).
 *
 * @example
 * ```ts
 * import { AF_UNIX, SOCK_CLOEXEC, SOCK_STREAM, socket } from "./socket.ts";
 * const fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC);
 * ```
 */
export function socket(domain: number, type: number, protocol = 0): number {
  const fd = libc().socket(domain, type, protocol);
  if (fd < 0) throw lastError("socket");
  return fd;
}

/**
 * Binds an AF_UNIX socket to a filesystem path (at most 107 bytes), or to an abstract name
 * written "@name".
 *
 * @example
 * ```ts
 * import { AF_UNIX, bindUnix, SOCK_STREAM, socket } from "./socket.ts";
 * bindUnix(socket(AF_UNIX, SOCK_STREAM), "/tmp/console.sock");
 * ```
 */
export function bindUnix(fd: number, path: string): void {
  const [addr, len] = sockaddrAny(path, "bind");
  if (libc().bind(fd, addr, len) < 0) {
    throw lastError("bind", path);
  }
}

/**
 * Connects an AF_UNIX socket to a path (blocking; unix connects complete at once or fail).
 *
 * @example
 * ```ts
 * import { AF_UNIX, connectUnix, SOCK_SEQPACKET, socket } from "./socket.ts";
 * connectUnix(socket(AF_UNIX, SOCK_SEQPACKET), "/run/x/attach");
 * ```
 */
export function connectUnix(fd: number, path: string): void {
  const [addr, len] = sockaddrAny(path, "connect");
  if (libc().connect(fd, addr, len) < 0) {
    throw lastError("connect", path);
  }
}

/**
 * Sets O_NONBLOCK on a descriptor (fcntl F_GETFL/F_SETFL), so {@link writeAsync} never waits
 * on the JS thread.
 *
 * @example
 * ```ts
 * import { setNonblocking } from "./socket.ts";
 * setNonblocking(5);
 * ```
 */
export function setNonblocking(fd: number): void {
  const flags = libc().fcntl(fd, 3, /* F_GETFL */ 0);
  if (flags < 0) throw lastError("fcntl", undefined, `F_GETFL fd ${fd}`);
  if (libc().fcntl(fd, 4, /* F_SETFL */ flags | SOCK_NONBLOCK) < 0) {
    throw lastError("fcntl", undefined, `F_SETFL fd ${fd}`);
  }
}

/**
 * Calls listen(2).
 *
 * @example
 * ```ts
 * import { listen } from "./socket.ts";
 * listen(3, 16);
 * ```
 */
export function listen(fd: number, backlog = 16): void {
  if (libc().listen(fd, backlog) < 0) throw lastError("listen", undefined, `fd ${fd}`);
}

/**
 * Calls accept4(2) (peer address not returned). Blocks the JS thread on a blocking socket
 * with no pending connection: prefer {@link acceptAsync}.
 *
 * @example
 * ```ts
 * import { accept4, SOCK_CLOEXEC } from "./socket.ts";
 * const conn = accept4(3, SOCK_CLOEXEC);
 * ```
 */
export function accept4(fd: number, flags = SOCK_CLOEXEC): number {
  const c = libc().accept4(fd, null, null, flags);
  if (c < 0) throw lastError("accept4", undefined, `fd ${fd}`);
  return c;
}

/**
 * Calls shutdown(2); `SHUT_WR` makes the peer read end-of-file.
 *
 * @example
 * ```ts
 * import { shutdown, SHUT_WR } from "./socket.ts";
 * shutdown(3, SHUT_WR);
 * ```
 */
export function shutdown(fd: number, how: number): void {
  if (libc().shutdown(fd, how) < 0) throw lastError("shutdown", undefined, `fd ${fd}`);
}

/**
 * Waits (off the JS thread) until `fd` has one of `events`, or `timeoutMs` passes (-1:
 * forever). Resolves with the returned `revents` (0 on timeout). An interrupted poll counts as
 * a timeout.
 *
 * @example
 * ```ts
 * import { pollAsync, POLLIN } from "./socket.ts";
 * const rev = await pollAsync(3, POLLIN, 1000);
 * ```
 */
export async function pollAsync(fd: number, events: number, timeoutMs: number): Promise<number> {
  const pfd = new Uint8Array(8);
  const view = new DataView(pfd.buffer);
  view.setInt32(0, fd, true);
  view.setInt16(4, events, true);
  const r = await libcAsync().poll(pfd, 1n, timeoutMs);
  if (r <= 0) return 0;
  return view.getUint16(6, true);
}

/**
 * poll(2) over many descriptors on a worker thread: resolves with each one's `revents`, in
 * the order given (all 0 on timeout). `timeoutMs` -1 waits without limit.
 *
 * @example
 * ```ts
 * import { pollMany, POLLIN } from "./socket.ts";
 * const [a, b] = await pollMany([{ fd: 3, events: POLLIN }, { fd: 4, events: POLLIN }], 1000);
 * ```
 */
export async function pollMany(
  fds: readonly { fd: number; events: number }[],
  timeoutMs: number,
): Promise<number[]> {
  const buf = new Uint8Array(8 * fds.length);
  const view = new DataView(buf.buffer);
  fds.forEach((p, i) => {
    view.setInt32(8 * i, p.fd, true);
    view.setInt16(8 * i + 4, p.events, true);
  });
  const r = await libcAsync().poll(buf, BigInt(fds.length), timeoutMs);
  return fds.map((_, i) => r > 0 ? view.getUint16(8 * i + 6, true) : 0);
}

/** eventfd(2) flag: close-on-exec. */
export const EFD_CLOEXEC = 0o2000000;
/** eventfd(2) flag: reads and writes never block. */
export const EFD_NONBLOCK = 0o4000;

/**
 * A new eventfd (eventfd(2)): a counter that polls readable while non-zero, used to wake a
 * thread blocked in poll. Write 8 bytes to add, read 8 to reset.
 *
 * @example
 * ```ts
 * import { eventfd, EFD_CLOEXEC, EFD_NONBLOCK } from "./socket.ts";
 * const fd = eventfd(EFD_CLOEXEC | EFD_NONBLOCK);
 * ```
 */
export function eventfd(flags = EFD_CLOEXEC | EFD_NONBLOCK): number {
  const fd = libc().eventfd(0, flags);
  if (fd < 0) throw lastError("eventfd");
  return fd;
}

/**
 * Adds one to an eventfd's counter (it then polls readable). EAGAIN, a counter at its
 * maximum, still leaves it readable and is ignored.
 *
 * @example
 * ```ts
 * import { eventfd, eventfdSignal } from "./socket.ts";
 * eventfdSignal(eventfd());
 * ```
 */
export function eventfdSignal(fd: number): void {
  const one = new Uint8Array(new BigUint64Array([1n]).buffer);
  if (toNumber(libc().write(fd, one, 8n)) < 0) {
    const e = lastError("write", undefined, `eventfd ${fd}`);
    if (e.code !== "EAGAIN") throw e;
  }
}

/**
 * Resets a non-blocking eventfd's counter to zero (no longer readable); returns what it held.
 *
 * @example
 * ```ts
 * import { eventfd, eventfdDrain, eventfdSignal } from "./socket.ts";
 * const fd = eventfd();
 * eventfdSignal(fd);
 * eventfdDrain(fd); // 1n
 * ```
 */
export function eventfdDrain(fd: number): bigint {
  const buf = new BigUint64Array(1);
  if (toNumber(libc().read(fd, new Uint8Array(buf.buffer), 8n)) < 0) {
    const e = lastError("read", undefined, `eventfd ${fd}`);
    if (e.code !== "EAGAIN") throw e;
    return 0n;
  }
  return buf[0];
}

/** Options of the waiting I/O calls. */
export interface AsyncIoOptions {
  /** Stops waiting (rejects with the signal's reason). */
  signal?: AbortSignal;
  /** Poll slice in ms between checks of `signal` (default 250). */
  sliceMs?: number;
}

async function waitFor(fd: number, events: number, call: string, o: AsyncIoOptions) {
  for (;;) {
    o.signal?.throwIfAborted();
    const rev = await pollAsync(fd, events, o.sliceMs ?? 250);
    if (rev & POLLNVAL) throw new SyscallError(call, 9, /* EBADF */ undefined, `fd ${fd}`);
    if (rev) return;
  }
}

/**
 * Reads once from `fd` into `buf` without blocking the event loop: waits for readability with
 * {@link pollAsync}, then read(2) on the JS thread. Resolves with the byte count, 0 at
 * end-of-file. On a SOCK_SEQPACKET socket one call returns one packet (excess truncated). A
 * pty master whose slave side is all closed reads as end-of-file (its EIO is mapped to 0).
 *
 * @example
 * ```ts
 * import { readAsync } from "./socket.ts";
 * const buf = new Uint8Array(4096);
 * const n = await readAsync(3, buf);
 * ```
 */
export async function readAsync(
  fd: number,
  buf: Uint8Array<ArrayBuffer>,
  o: AsyncIoOptions = {},
): Promise<number> {
  for (;;) {
    await waitFor(fd, POLLIN, "read", o);
    const n = toNumber(libc().read(fd, buf, BigInt(buf.length)));
    if (n >= 0) return n;
    const e = errno();
    if (e === EAGAIN || e === EINTR) continue;
    if (e === 5 /* EIO: pty hung up */) return 0;
    throw new SyscallError("read", e, undefined, `fd ${fd}`);
  }
}

/**
 * Writes all of `data` to `fd` without blocking the event loop (poll for writability, then
 * write(2) on the JS thread; partial writes continue). Use a nonblocking descriptor for large
 * writes: on a blocking one a write past the free buffer space waits on the JS thread. On a
 * SOCK_SEQPACKET socket each call should carry one packet (callers split large data).
 *
 * @example
 * ```ts
 * import { writeAsync } from "./socket.ts";
 * await writeAsync(3, new TextEncoder().encode("hello\n"));
 * ```
 */
export async function writeAsync(
  fd: number,
  data: Uint8Array,
  o: AsyncIoOptions = {},
): Promise<void> {
  let off = 0;
  const bytes = new Uint8Array(data); // a private copy: the caller may reuse its buffer
  while (off < bytes.length || bytes.length === 0) {
    await waitFor(fd, POLLOUT, "write", o);
    const chunk = bytes.subarray(off);
    const n = toNumber(libc().write(fd, chunk, BigInt(chunk.length)));
    if (n < 0) {
      const e = errno();
      if (e === EAGAIN || e === EINTR) continue;
      throw new SyscallError("write", e, undefined, `fd ${fd}`);
    }
    off += n;
    if (bytes.length === 0) return;
  }
}

/**
 * Accepts one connection without blocking the event loop.
 *
 * @example
 * ```ts
 * import { acceptAsync } from "./socket.ts";
 * const conn = await acceptAsync(3, { signal: AbortSignal.timeout(5000) });
 * ```
 */
export async function acceptAsync(
  fd: number,
  o: AsyncIoOptions & { flags?: number } = {},
): Promise<number> {
  for (;;) {
    await waitFor(fd, POLLIN, "accept4", o);
    const c = libc().accept4(fd, null, null, o.flags ?? SOCK_CLOEXEC);
    if (c >= 0) return c;
    const e = errno();
    if (e === EAGAIN || e === EINTR || e === 103 /* ECONNABORTED */) continue;
    throw new SyscallError("accept4", e, undefined, `fd ${fd}`);
  }
}

/** What {@link recvFd} received. */
export interface ReceivedFd {
  /** The passed descriptor (close-on-exec), or undefined if the message carried none. */
  fd?: number;
  /** The message's data bytes (runc sends the console's name). */
  data: Uint8Array;
}

const CMSG_HDR = 16;
const CMSG_SPACE_1FD = 24; // CMSG_SPACE(sizeof(int)) on 64-bit Linux
const CMSG_LEN_1FD = 20; // CMSG_LEN(sizeof(int))

/**
 * Receives one message carrying at most one descriptor (`SCM_RIGHTS`) with recvmsg(2),
 * synchronously. Extra descriptors (if a peer sent several) are not collected.
 *
 * @example
 * ```ts
 * import { recvFd } from "./socket.ts";
 * const { fd, data } = recvFd(4);
 * ```
 */
export function recvFd(sock: number, maxData = 4096): ReceivedFd {
  const r = tryRecvFd(sock, maxData);
  if (typeof r === "number") throw new SyscallError("recvmsg", r, undefined, `fd ${sock}`);
  return r;
}

function tryRecvFd(sock: number, maxData: number): ReceivedFd | number {
  const data = new Uint8Array(Math.max(1, maxData));
  const iov = new Uint8Array(16);
  const control = new Uint8Array(CMSG_SPACE_1FD);
  const msg = new Uint8Array(56);
  const iv = new DataView(iov.buffer);
  iv.setBigUint64(0, ptr(data), true);
  iv.setBigUint64(8, BigInt(data.length), true);
  const mv = new DataView(msg.buffer);
  mv.setBigUint64(16, ptr(iov), true);
  mv.setBigUint64(24, 1n, true);
  mv.setBigUint64(32, ptr(control), true);
  mv.setBigUint64(40, BigInt(control.length), true);
  const n = toNumber(libc().recvmsg(sock, msg, MSG_CMSG_CLOEXEC));
  if (n < 0) return errno();
  // Keep the buffers alive past the call (their addresses were written into msg).
  void [data, iov, control];
  const controllen = Number(mv.getBigUint64(40, true));
  let fd: number | undefined;
  if (controllen >= CMSG_LEN_1FD) {
    const cv = new DataView(control.buffer);
    const len = Number(cv.getBigUint64(0, true));
    if (
      len >= CMSG_LEN_1FD && cv.getInt32(8, true) === SOL_SOCKET &&
      cv.getInt32(12, true) === SCM_RIGHTS
    ) {
      fd = cv.getInt32(CMSG_HDR, true);
    }
  }
  return { fd, data: data.slice(0, n) };
}

/**
 * {@link recvFd} that first waits (off the JS thread) for the message to arrive.
 *
 * @example
 * ```ts
 * import { recvFdAsync } from "./socket.ts";
 * const { fd } = await recvFdAsync(4, { signal: AbortSignal.timeout(5000) });
 * ```
 */
export async function recvFdAsync(
  sock: number,
  o: AsyncIoOptions & { maxData?: number } = {},
): Promise<ReceivedFd> {
  for (;;) {
    await waitFor(sock, POLLIN, "recvmsg", o);
    const r = tryRecvFd(sock, o.maxData ?? 4096);
    if (typeof r !== "number") return r;
    if (r === EAGAIN || r === EINTR) continue;
    throw new SyscallError("recvmsg", r, undefined, `fd ${sock}`);
  }
}

/**
 * Sends `data` (at least one byte is sent: a zero-length message could not carry the
 * descriptor on a stream socket) together with descriptor `fd` (`SCM_RIGHTS`) via sendmsg(2).
 *
 * @example
 * ```ts
 * import { sendFd } from "./socket.ts";
 * sendFd(4, 7, new TextEncoder().encode("/dev/pts/0"));
 * ```
 */
export function sendFd(sock: number, fd: number, data: Uint8Array = new Uint8Array([0])): void {
  const payload = new Uint8Array(data.length ? data : [0]);
  const iov = new Uint8Array(16);
  const control = new Uint8Array(CMSG_SPACE_1FD);
  const msg = new Uint8Array(56);
  const iv = new DataView(iov.buffer);
  iv.setBigUint64(0, ptr(payload), true);
  iv.setBigUint64(8, BigInt(payload.length), true);
  const cv = new DataView(control.buffer);
  cv.setBigUint64(0, BigInt(CMSG_LEN_1FD), true);
  cv.setInt32(8, SOL_SOCKET, true);
  cv.setInt32(12, SCM_RIGHTS, true);
  cv.setInt32(CMSG_HDR, fd, true);
  const mv = new DataView(msg.buffer);
  mv.setBigUint64(16, ptr(iov), true);
  mv.setBigUint64(24, 1n, true);
  mv.setBigUint64(32, ptr(control), true);
  mv.setBigUint64(40, BigInt(control.length), true);
  const n = toNumber(libc().sendmsg(sock, msg, MSG_NOSIGNAL));
  if (n < 0) throw lastError("sendmsg", undefined, `fd ${sock}`);
  void [payload, iov, control];
}
