/**
 * Request metadata as handlers see it: the one method they use, `get(key)`, which grpc-js's
 * `Metadata` has too, so both servers hand their own object to the same handlers.
 *
 * @example
 * ```ts
 * import { HeaderMetadata } from "./call_metadata.ts";
 * const md = new HeaderMetadata([{ name: "containerd-namespace", value: "k8s.io" }]);
 * md.get("containerd-namespace"); // ["k8s.io"]
 * ```
 */
import type { HeaderField } from "./hpack.ts";

/** The header naming the containerd namespace of a management call (containerd's is also read). */
export const NAMESPACE_HEADER = "k8scontainerd-namespace";

/** What a handler may ask of a call's metadata (grpc-js `Metadata` satisfies it). */
export interface CallMetadata {
  /** Every value of `key` (lower case), in order; empty when absent. */
  get(key: string): (string | Uint8Array)[];
}

/** Headers the transport uses: not metadata (grpc-js leaves them out too). */
const RESERVED = new Set([
  "content-type",
  "te",
  "user-agent",
  "grpc-timeout",
  "grpc-encoding",
  "grpc-accept-encoding",
]);

/**
 * Metadata over a decoded HTTP/2 request header list; pseudo-headers and transport headers
 * are left out, `-bin` values are base64-decoded on `get`.
 *
 * @example
 * ```ts
 * const md = new HeaderMetadata(stream.headers);
 * namespaceOf(md);
 * ```
 */
export class HeaderMetadata implements CallMetadata {
  readonly #fields: readonly HeaderField[];

  constructor(fields: readonly HeaderField[]) {
    this.#fields = fields;
  }

  get(key: string): (string | Uint8Array)[] {
    const k = key.toLowerCase();
    const out: (string | Uint8Array)[] = [];
    if (k.startsWith(":") || RESERVED.has(k)) return out;
    for (const f of this.#fields) {
      if (f.name !== k) continue;
      if (k.endsWith("-bin")) out.push(Uint8Array.from(atob(f.value), (c) => c.charCodeAt(0)));
      else out.push(f.value);
    }
    return out;
  }
}
