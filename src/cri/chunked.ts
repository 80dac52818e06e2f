/**
 * The paging every `Stream*` list RPC of the CRI (KEP 5825, `CRIListStreaming`) shares: the
 * same objects the matching `List*` call returns, split into response messages of at most
 * `size` objects each. As the proto asks ("lists of at least one item") and containerd does, an
 * empty result sends no message at all: the stream just ends with OK, which the kubelet reads
 * as an empty list.
 *
 * @example
 * ```ts
 * for (const page of chunked([1, 2, 3], 2)) console.log(page); // [1, 2] then [3]
 * ```
 */

/** containerd sends 5000 per message; smaller pages keep each message well under 16 MiB. */
export const DEFAULT_STREAM_BATCH_SIZE = 100;

/** Splits `items` into pages of `size` (≥ 1); nothing at all for an empty list. */
export function* chunked<T>(items: readonly T[], size = DEFAULT_STREAM_BATCH_SIZE): Generator<T[]> {
  const n = Math.max(1, Math.floor(size));
  for (let i = 0; i < items.length; i += n) yield items.slice(i, i + n);
}

/**
 * Turns a `List*` handler into its `Stream*` handler: runs the list, then yields one response
 * per page, built by `wrap` (each Stream response names its repeated field differently).
 *
 * @example
 * ```ts
 * const streamContainers = streamOf(listContainers, (r) => r.containers,
 *   (containers) => ({ containers }));
 * ```
 */
export function streamOf<Req, ListRes, Item, StreamRes>(
  list: (req: Req) => Promise<ListRes>,
  items: (res: ListRes) => Item[],
  wrap: (page: Item[]) => StreamRes,
  size: () => number = () => DEFAULT_STREAM_BATCH_SIZE,
): (req: Req, call?: { signal: AbortSignal }) => AsyncGenerator<StreamRes> {
  return async function* (req, call) {
    const all = items(await list(req));
    for (const page of chunked(all, size())) {
      if (call?.signal.aborted) return;
      yield wrap(page);
    }
  };
}
