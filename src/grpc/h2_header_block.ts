/**
 * A header block arriving in pieces: HEADERS without END_HEADERS, then CONTINUATION frames of
 * the same stream until one has END_HEADERS (RFC 9113 §6.10), bounded so that a peer cannot
 * grow it without end. Our server and our client collect blocks alike.
 *
 * @example
 * ```ts
 * import { HeaderBlock } from "./h2_header_block.ts";
 * const b = new HeaderBlock(1, true, new Uint8Array([0x82]));
 * b.continue({ type: 9, flags: 4, streamId: 1, payload: new Uint8Array([0x84]) }); // [0x82, 0x84]
 * ```
 */
import { FLAG, type Frame, H2_ERROR } from "./h2_frames.ts";
import { ConnectionError } from "./h2_frame_rules.ts";

/** The largest header block taken, HEADERS and CONTINUATIONs together. */
export const MAX_HEADER_BLOCK = 1 << 20;

export class HeaderBlock {
  readonly #parts: Uint8Array[];
  #size: number;

  constructor(readonly streamId: number, readonly endStream: boolean, first: Uint8Array) {
    this.#parts = [first.slice()];
    this.#size = first.length;
  }

  /** Adds a CONTINUATION; returns the whole block once it ends it. */
  continue(f: Frame): Uint8Array | undefined {
    if (f.streamId !== this.streamId) {
      throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, "CONTINUATION without a header block");
    }
    this.#size += f.payload.length;
    if (this.#size > MAX_HEADER_BLOCK) {
      throw new ConnectionError(
        H2_ERROR.ENHANCE_YOUR_CALM,
        `header block past ${MAX_HEADER_BLOCK} octets`,
      );
    }
    this.#parts.push(f.payload.slice());
    if (!(f.flags & FLAG.END_HEADERS)) return undefined;
    const block = new Uint8Array(this.#size);
    let at = 0;
    for (const p of this.#parts) {
      block.set(p, at);
      at += p.length;
    }
    return block;
  }
}
