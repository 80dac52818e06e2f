/**
 * Terminals: opening a pseudo-terminal pair and setting or reading its window size
 * (TIOCSWINSZ / TIOCGWINSZ, 0x5414 / 0x5413 on both x86_64 and aarch64, from
 * asm-generic/ioctls.h). `struct winsize { u16 rows, cols, xpixel, ypixel }`.
 *
 * @example
 * ```ts
 * import { getWinsize, openPty, setWinsize } from "./tty.ts";
 * const { master, slavePath } = openPty();
 * setWinsize(master, 30, 100);
 * getWinsize(master); // { rows: 30, cols: 100 }
 * ```
 *
 * @module
 */

import { lastError, SyscallError } from "./errno.ts";
import { libc } from "./libc.ts";

/** ioctl: set the window size. */
export const TIOCSWINSZ = 0x5414;
/** ioctl: get the window size. */
export const TIOCGWINSZ = 0x5413;

/** A terminal's size in character cells. */
export interface Winsize {
  rows: number;
  cols: number;
}

/**
 * Sets a terminal's window size (on a pty master or slave); the foreground process group of
 * the terminal gets SIGWINCH.
 *
 * @example
 * ```ts
 * import { setWinsize } from "./tty.ts";
 * setWinsize(5, 24, 80);
 * ```
 */
export function setWinsize(fd: number, rows: number, cols: number): void {
  const ws = new Uint8Array(8);
  const v = new DataView(ws.buffer);
  v.setUint16(0, Math.max(0, Math.min(0xffff, Math.trunc(rows))), true);
  v.setUint16(2, Math.max(0, Math.min(0xffff, Math.trunc(cols))), true);
  if (libc().ioctl(fd, BigInt(TIOCSWINSZ), ws) < 0) {
    throw lastError("ioctl", undefined, `TIOCSWINSZ fd ${fd}`);
  }
}

/**
 * Reads a terminal's window size.
 *
 * @example
 * ```ts
 * import { getWinsize } from "./tty.ts";
 * const { rows, cols } = getWinsize(5);
 * ```
 */
export function getWinsize(fd: number): Winsize {
  const ws = new Uint8Array(8);
  if (libc().ioctl(fd, BigInt(TIOCGWINSZ), ws) < 0) {
    throw lastError("ioctl", undefined, `TIOCGWINSZ fd ${fd}`);
  }
  const v = new DataView(ws.buffer);
  return { rows: v.getUint16(0, true), cols: v.getUint16(2, true) };
}

/** A new pseudo-terminal: the master descriptor and the slave's path. */
export interface Pty {
  master: number;
  slavePath: string;
}

/**
 * Opens a new pseudo-terminal (posix_openpt with O_RDWR|O_NOCTTY|O_CLOEXEC, unlockpt,
 * ptsname_r). The slave is not opened: open it by path (it stays usable until the master is
 * closed). Close the master with `close` from `./fs.ts`.
 *
 * @example
 * ```ts
 * import { openPty } from "./tty.ts";
 * const { master, slavePath } = openPty(); // slavePath like "/dev/pts/3"
 * ```
 */
export function openPty(): Pty {
  const master = libc().posix_openpt(0o2 | 0o400 | 0o2000000);
  if (master < 0) throw lastError("posix_openpt");
  try {
    if (libc().unlockpt(master) < 0) throw lastError("unlockpt", undefined, `fd ${master}`);
    const buf = new Uint8Array(128);
    const rc = libc().ptsname_r(master, buf, BigInt(buf.length));
    if (rc !== 0) throw new SyscallError("ptsname_r", rc, undefined, `fd ${master}`);
    const end = buf.indexOf(0);
    const slavePath = new TextDecoder().decode(buf.subarray(0, end < 0 ? buf.length : end));
    return { master, slavePath };
  } catch (e) {
    libc().close(master);
    throw e;
  }
}
