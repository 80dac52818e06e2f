/**
 * The layer → snapshot step of a pull (containerd's unpacker): chain IDs, and applying one
 * compressed layer blob into a new committed snapshot named by its chain ID.
 *
 * @example
 * ```ts
 * import { chainIDs, unpackLayer } from "./unpack.ts";
 * const chain = chainIDs(config.rootfs.diff_ids);
 * let parent: string | undefined;
 * for (const [i, layer] of manifest.layers.entries()) {
 *   await unpackLayer({
 *     snapshotter, namespace: "k8s.io", parentChainID: parent, chainID: chain[i],
 *     diffID: config.rootfs.diff_ids[i], stream: await content.read(layer.digest),
 *     compression: compressionOf(layer.mediaType),
 *   });
 *   parent = chain[i];
 * }
 * ```
 *
 * @module
 */
import { createHash } from "node:crypto";
import { applyLayer } from "../archive/apply.ts";
import { type CompressionKind, decompress } from "../archive/compression.ts";
import { InvalidArgumentError, isKind } from "../errdefs/errors.ts";
import type { Snapshotter } from "./snapshotter.ts";

/**
 * The chain IDs of a layer stack (OCI image spec): chainID(0) = diffID(0), chainID(n) =
 * sha256(chainID(n-1) + " " + diffID(n)).
 *
 * @example
 * ```ts
 * import { chainIDs } from "./unpack.ts";
 * const [base, top] = chainIDs(["sha256:aaa…", "sha256:bbb…"]); // base === "sha256:aaa…"
 * ```
 */
export function chainIDs(diffIDs: string[]): string[] {
  const out: string[] = [];
  for (const d of diffIDs) {
    const prev = out.at(-1);
    out.push(
      prev === undefined
        ? d
        : `sha256:${createHash("sha256").update(`${prev} ${d}`).digest("hex")}`,
    );
  }
  return out;
}

/** What {@link unpackLayer} needs. */
export interface UnpackLayerOptions {
  snapshotter: Snapshotter;
  namespace: string;
  /** The committed snapshot below this layer (undefined for the base layer). */
  parentChainID?: string;
  chainID: string;
  /** From the image config's rootfs.diff_ids: what the uncompressed tar must hash to. */
  diffID: string;
  /** The layer blob as stored (compressed). */
  stream: ReadableStream<Uint8Array>;
  compression: CompressionKind;
  /** Labels of the committed snapshot. */
  labels?: Record<string, string>;
  /** Allow device nodes in the layer (default true). */
  allowDevices?: boolean;
}

/** What {@link unpackLayer} did. */
export interface UnpackLayerResult {
  chainID: string;
  /** False when the snapshot existed already (or another unpack made it meanwhile). */
  applied: boolean;
  /** Tar bytes applied (0 when skipped). */
  size: number;
}

/** In-flight unpacks per snapshotter: key `namespace\0chainID`. */
const inflight = new WeakMap<Snapshotter, Map<string, Promise<UnpackLayerResult>>>();

/**
 * Makes the committed snapshot `chainID` from one layer: skip if it exists; otherwise prepare
 * an active snapshot `extract-<random>-<chainID>` on the parent, decompress and apply the
 * blob into its upper dir (overlay whiteouts for overlayfs, deletions for native), check the
 * diffID, and commit it as `chainID`. On any error the active snapshot is removed, so nothing
 * half-applied stays visible. Two unpacks of one chain ID in this process: the second waits
 * for the first and, if it succeeded, skips; across processes, losing the commit race
 * (AlreadyExists) counts as success, as in containerd.
 *
 * Errors: {@link InvalidArgumentError} `layer <diffID>: diffID mismatch: config says …,
 * content gives …`, or the apply/decompress error (naming the entry).
 *
 * @example
 * ```ts
 * import { unpackLayer } from "./unpack.ts";
 * const r = await unpackLayer({ snapshotter, namespace: "default", chainID: d, diffID: d,
 *   stream: blob.stream(), compression: "gzip" });
 * console.log(r.applied);
 * ```
 */
export async function unpackLayer(opts: UnpackLayerOptions): Promise<UnpackLayerResult> {
  let running = inflight.get(opts.snapshotter);
  if (!running) inflight.set(opts.snapshotter, running = new Map());
  const key = `${opts.namespace}\0${opts.chainID}`;
  const other = running.get(key);
  if (other) {
    const ok = await other.then(() => true, () => false);
    if (ok && committed(opts)) {
      await opts.stream.cancel().catch(() => {});
      return { chainID: opts.chainID, applied: false, size: 0 };
    }
  }
  const p = unpack(opts);
  running.set(key, p);
  try {
    return await p;
  } finally {
    if (running.get(key) === p) running.delete(key);
  }
}

function committed(opts: UnpackLayerOptions): boolean {
  try {
    return opts.snapshotter.stat(opts.namespace, opts.chainID).kind === "committed";
  } catch (e) {
    if (isKind(e, "not-found")) return false;
    throw e;
  }
}

async function unpack(opts: UnpackLayerOptions): Promise<UnpackLayerResult> {
  const { snapshotter: sn, namespace, chainID } = opts;
  if (committed(opts)) {
    await opts.stream.cancel().catch(() => {});
    return { chainID, applied: false, size: 0 };
  }
  const random = crypto.getRandomValues(new Uint8Array(8));
  const active = `extract-${
    Array.from(random, (b) => b.toString(16).padStart(2, "0")).join("")
  }-${chainID}`;
  try {
    await sn.prepare(namespace, active, opts.parentChainID, {
      "k8scontainerd.io/snapshot/extract": chainID,
    });
  } catch (e) {
    await opts.stream.cancel().catch(() => {});
    throw e;
  }
  try {
    const result = await applyLayer(
      decompress(opts.stream, opts.compression),
      sn.upperDir(namespace, active),
      { mode: sn.name === "overlayfs" ? "overlay" : "native", allowDevices: opts.allowDevices },
    );
    if (result.diffID !== opts.diffID) {
      throw new InvalidArgumentError(
        `layer ${opts.diffID}: diffID mismatch: config says ${opts.diffID}, content gives ${result.diffID}`,
      );
    }
    try {
      await sn.commit(namespace, chainID, active, {
        ...opts.labels,
        "k8scontainerd.io/snapshot/extract": "",
      });
    } catch (e) {
      if (!isKind(e, "already-exists")) throw e;
      await sn.remove(namespace, active);
      return { chainID, applied: false, size: result.size };
    }
    return { chainID, applied: true, size: result.size };
  } catch (e) {
    await opts.stream.cancel().catch(() => {});
    try {
      await sn.remove(namespace, active);
    } catch { /* report the unpack error */ }
    throw e;
  }
}
