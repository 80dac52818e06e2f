/**
 * Preparing the API socket path: its directory exists, and a socket file left by a daemon that
 * died is removed — but only after checking nobody answers on it, so a live daemon's socket is
 * never stolen (the root lock guards the same root; this guards a shared --address).
 */
import { FailedPreconditionError } from "../errdefs/errors.ts";

export async function prepareSocketPath(path: string): Promise<void> {
  const dir = path.slice(0, path.lastIndexOf("/")) || "/";
  await Deno.mkdir(dir, { recursive: true, mode: 0o711 });
  let info: Deno.FileInfo;
  try {
    info = await Deno.lstat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return;
    throw e;
  }
  if (!info.isSocket) {
    throw new FailedPreconditionError(
      `socket path ${path} exists and is not a socket; remove it or choose another --address`,
    );
  }
  try {
    const conn = await Deno.connect({ transport: "unix", path });
    conn.close();
    throw new FailedPreconditionError(`another daemon is already serving on ${path}`);
  } catch (e) {
    if (e instanceof FailedPreconditionError) throw e;
    // Nobody listens: a leftover from a daemon that was killed.
    await Deno.remove(path).catch((err) => {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    });
  }
}

/** Sets the socket to 0660 owned by uid:gid, so only root and the chosen group may call it. */
export async function secureSocket(path: string, uid: number, gid: number): Promise<void> {
  await Deno.chmod(path, 0o660);
  if (Deno.uid() === 0) await Deno.chown(path, uid, gid);
}
