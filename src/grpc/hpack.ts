/**
 * HPACK (RFC 7541) header compression for HTTP/2: a decoder that keeps the peer's dynamic
 * table across header blocks, and an encoder that by default never touches the dynamic table
 * (so the receiver's decoder state never depends on ours) — the pieces the gRPC edge's authority rewriter
 * needs to rewrite a header block. Strings are byte strings: every octet is one UTF-16 code
 * unit (latin1), so arbitrary octets round-trip exactly and `.length` is the octet count.
 *
 * @example
 * ```ts
 * import { HpackDecoder, HpackEncoder } from "./hpack.ts";
 * const block = new HpackEncoder().encode([{ name: ":method", value: "POST" }]);
 * const fields = new HpackDecoder().decode(block); // [{ name: ":method", value: "POST" }]
 * ```
 */

/** One header field. `sensitive` marks a field sent (and to be re-sent) as never indexed. */
export interface HeaderField {
  name: string;
  value: string;
  sensitive?: boolean;
}

/** A malformed header block or one the decoder's limits refuse (a COMPRESSION_ERROR). */
export class HpackError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "HpackError";
  }
}

/** RFC 7541 Appendix A: the static table; index 1 is `STATIC_TABLE[0]`. */
export const STATIC_TABLE: readonly (readonly [string, string])[] = [
  [":authority", ""],
  [":method", "GET"],
  [":method", "POST"],
  [":path", "/"],
  [":path", "/index.html"],
  [":scheme", "http"],
  [":scheme", "https"],
  [":status", "200"],
  [":status", "204"],
  [":status", "206"],
  [":status", "304"],
  [":status", "400"],
  [":status", "404"],
  [":status", "500"],
  ["accept-charset", ""],
  ["accept-encoding", "gzip, deflate"],
  ["accept-language", ""],
  ["accept-ranges", ""],
  ["accept", ""],
  ["access-control-allow-origin", ""],
  ["age", ""],
  ["allow", ""],
  ["authorization", ""],
  ["cache-control", ""],
  ["content-disposition", ""],
  ["content-encoding", ""],
  ["content-language", ""],
  ["content-length", ""],
  ["content-location", ""],
  ["content-range", ""],
  ["content-type", ""],
  ["cookie", ""],
  ["date", ""],
  ["etag", ""],
  ["expect", ""],
  ["expires", ""],
  ["from", ""],
  ["host", ""],
  ["if-match", ""],
  ["if-modified-since", ""],
  ["if-none-match", ""],
  ["if-range", ""],
  ["if-unmodified-since", ""],
  ["last-modified", ""],
  ["link", ""],
  ["location", ""],
  ["max-forwards", ""],
  ["proxy-authenticate", ""],
  ["proxy-authorization", ""],
  ["range", ""],
  ["referer", ""],
  ["refresh", ""],
  ["retry-after", ""],
  ["server", ""],
  ["set-cookie", ""],
  ["strict-transport-security", ""],
  ["transfer-encoding", ""],
  ["user-agent", ""],
  ["vary", ""],
  ["via", ""],
  ["www-authenticate", ""],
];

/** Static-table lookups: first index of a name, and index of an exact name+value pair. */
const STATIC_NAME = new Map<string, number>();
const STATIC_PAIR = new Map<string, number>();
STATIC_TABLE.forEach(([name, value], i) => {
  if (!STATIC_NAME.has(name)) STATIC_NAME.set(name, i + 1);
  STATIC_PAIR.set(`${name}\0${value}`, i + 1);
});

/** RFC 7541 Appendix B: the Huffman code of each octet (MSB-aligned in `length` bits). */
const HUFFMAN_CODES = new Uint32Array([
  0x1ff8,
  0x7fffd8,
  0xfffffe2,
  0xfffffe3,
  0xfffffe4,
  0xfffffe5,
  0xfffffe6,
  0xfffffe7,
  0xfffffe8,
  0xffffea,
  0x3ffffffc,
  0xfffffe9,
  0xfffffea,
  0x3ffffffd,
  0xfffffeb,
  0xfffffec,
  0xfffffed,
  0xfffffee,
  0xfffffef,
  0xffffff0,
  0xffffff1,
  0xffffff2,
  0x3ffffffe,
  0xffffff3,
  0xffffff4,
  0xffffff5,
  0xffffff6,
  0xffffff7,
  0xffffff8,
  0xffffff9,
  0xffffffa,
  0xffffffb,
  0x14,
  0x3f8,
  0x3f9,
  0xffa,
  0x1ff9,
  0x15,
  0xf8,
  0x7fa,
  0x3fa,
  0x3fb,
  0xf9,
  0x7fb,
  0xfa,
  0x16,
  0x17,
  0x18,
  0x0,
  0x1,
  0x2,
  0x19,
  0x1a,
  0x1b,
  0x1c,
  0x1d,
  0x1e,
  0x1f,
  0x5c,
  0xfb,
  0x7ffc,
  0x20,
  0xffb,
  0x3fc,
  0x1ffa,
  0x21,
  0x5d,
  0x5e,
  0x5f,
  0x60,
  0x61,
  0x62,
  0x63,
  0x64,
  0x65,
  0x66,
  0x67,
  0x68,
  0x69,
  0x6a,
  0x6b,
  0x6c,
  0x6d,
  0x6e,
  0x6f,
  0x70,
  0x71,
  0x72,
  0xfc,
  0x73,
  0xfd,
  0x1ffb,
  0x7fff0,
  0x1ffc,
  0x3ffc,
  0x22,
  0x7ffd,
  0x3,
  0x23,
  0x4,
  0x24,
  0x5,
  0x25,
  0x26,
  0x27,
  0x6,
  0x74,
  0x75,
  0x28,
  0x29,
  0x2a,
  0x7,
  0x2b,
  0x76,
  0x2c,
  0x8,
  0x9,
  0x2d,
  0x77,
  0x78,
  0x79,
  0x7a,
  0x7b,
  0x7ffe,
  0x7fc,
  0x3ffd,
  0x1ffd,
  0xffffffc,
  0xfffe6,
  0x3fffd2,
  0xfffe7,
  0xfffe8,
  0x3fffd3,
  0x3fffd4,
  0x3fffd5,
  0x7fffd9,
  0x3fffd6,
  0x7fffda,
  0x7fffdb,
  0x7fffdc,
  0x7fffdd,
  0x7fffde,
  0xffffeb,
  0x7fffdf,
  0xffffec,
  0xffffed,
  0x3fffd7,
  0x7fffe0,
  0xffffee,
  0x7fffe1,
  0x7fffe2,
  0x7fffe3,
  0x7fffe4,
  0x1fffdc,
  0x3fffd8,
  0x7fffe5,
  0x3fffd9,
  0x7fffe6,
  0x7fffe7,
  0xffffef,
  0x3fffda,
  0x1fffdd,
  0xfffe9,
  0x3fffdb,
  0x3fffdc,
  0x7fffe8,
  0x7fffe9,
  0x1fffde,
  0x7fffea,
  0x3fffdd,
  0x3fffde,
  0xfffff0,
  0x1fffdf,
  0x3fffdf,
  0x7fffeb,
  0x7fffec,
  0x1fffe0,
  0x1fffe1,
  0x3fffe0,
  0x1fffe2,
  0x7fffed,
  0x3fffe1,
  0x7fffee,
  0x7fffef,
  0xfffea,
  0x3fffe2,
  0x3fffe3,
  0x3fffe4,
  0x7ffff0,
  0x3fffe5,
  0x3fffe6,
  0x7ffff1,
  0x3ffffe0,
  0x3ffffe1,
  0xfffeb,
  0x7fff1,
  0x3fffe7,
  0x7ffff2,
  0x3fffe8,
  0x1ffffec,
  0x3ffffe2,
  0x3ffffe3,
  0x3ffffe4,
  0x7ffffde,
  0x7ffffdf,
  0x3ffffe5,
  0xfffff1,
  0x1ffffed,
  0x7fff2,
  0x1fffe3,
  0x3ffffe6,
  0x7ffffe0,
  0x7ffffe1,
  0x3ffffe7,
  0x7ffffe2,
  0xfffff2,
  0x1fffe4,
  0x1fffe5,
  0x3ffffe8,
  0x3ffffe9,
  0xffffffd,
  0x7ffffe3,
  0x7ffffe4,
  0x7ffffe5,
  0xfffec,
  0xfffff3,
  0xfffed,
  0x1fffe6,
  0x3fffe9,
  0x1fffe7,
  0x1fffe8,
  0x7ffff3,
  0x3fffea,
  0x3fffeb,
  0x1ffffee,
  0x1ffffef,
  0xfffff4,
  0xfffff5,
  0x3ffffea,
  0x7ffff4,
  0x3ffffeb,
  0x7ffffe6,
  0x3ffffec,
  0x3ffffed,
  0x7ffffe7,
  0x7ffffe8,
  0x7ffffe9,
  0x7ffffea,
  0x7ffffeb,
  0xffffffe,
  0x7ffffec,
  0x7ffffed,
  0x7ffffee,
  0x7ffffef,
  0x7fffff0,
  0x3ffffee,
]);
const HUFFMAN_LENGTHS = new Uint8Array([
  13,
  23,
  28,
  28,
  28,
  28,
  28,
  28,
  28,
  24,
  30,
  28,
  28,
  30,
  28,
  28,
  28,
  28,
  28,
  28,
  28,
  28,
  30,
  28,
  28,
  28,
  28,
  28,
  28,
  28,
  28,
  28,
  6,
  10,
  10,
  12,
  13,
  6,
  8,
  11,
  10,
  10,
  8,
  11,
  8,
  6,
  6,
  6,
  5,
  5,
  5,
  6,
  6,
  6,
  6,
  6,
  6,
  6,
  7,
  8,
  15,
  6,
  12,
  10,
  13,
  6,
  7,
  7,
  7,
  7,
  7,
  7,
  7,
  7,
  7,
  7,
  7,
  7,
  7,
  7,
  7,
  7,
  7,
  7,
  7,
  7,
  7,
  7,
  8,
  7,
  8,
  13,
  19,
  13,
  14,
  6,
  15,
  5,
  6,
  5,
  6,
  5,
  6,
  6,
  6,
  5,
  7,
  7,
  6,
  6,
  6,
  5,
  6,
  7,
  6,
  5,
  5,
  6,
  7,
  7,
  7,
  7,
  7,
  15,
  11,
  14,
  13,
  28,
  20,
  22,
  20,
  20,
  22,
  22,
  22,
  23,
  22,
  23,
  23,
  23,
  23,
  23,
  24,
  23,
  24,
  24,
  22,
  23,
  24,
  23,
  23,
  23,
  23,
  21,
  22,
  23,
  22,
  23,
  23,
  24,
  22,
  21,
  20,
  22,
  22,
  23,
  23,
  21,
  23,
  22,
  22,
  24,
  21,
  22,
  23,
  23,
  21,
  21,
  22,
  21,
  23,
  22,
  23,
  23,
  20,
  22,
  22,
  22,
  23,
  22,
  22,
  23,
  26,
  26,
  20,
  19,
  22,
  23,
  22,
  25,
  26,
  26,
  26,
  27,
  27,
  26,
  24,
  25,
  19,
  21,
  26,
  27,
  27,
  26,
  27,
  24,
  21,
  21,
  26,
  26,
  28,
  27,
  27,
  27,
  20,
  24,
  20,
  21,
  22,
  21,
  21,
  23,
  22,
  22,
  25,
  25,
  24,
  24,
  26,
  23,
  26,
  27,
  26,
  26,
  27,
  27,
  27,
  27,
  27,
  28,
  27,
  27,
  27,
  27,
  27,
  26,
]);

const EOS = 256;

/**
 * The Huffman decoding trie: node `n` has children at `HUFFMAN_TRIE[2n]` (bit 0) and
 * `[2n + 1]` (bit 1); a positive child is another node, a negative one the leaf `-(sym + 1)`.
 */
const HUFFMAN_TRIE = (() => {
  const trie = new Int32Array(2 * 512);
  let nodes = 1;
  for (let sym = 0; sym <= EOS; sym++) {
    const code = sym === EOS ? 0x3fffffff : HUFFMAN_CODES[sym];
    const len = sym === EOS ? 30 : HUFFMAN_LENGTHS[sym];
    let node = 0;
    for (let i = len - 1; i > 0; i--) {
      const slot = 2 * node + ((code >>> i) & 1);
      if (trie[slot] === 0) trie[slot] = nodes++;
      node = trie[slot];
    }
    trie[2 * node + (code & 1)] = -(sym + 1);
  }
  return trie;
})();

/** Bytes → byte string (one code unit per octet; not TextDecoder("latin1"), which is cp1252). */
function byteString(bytes: Uint8Array | number[]): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 4096) {
    s += String.fromCharCode(...bytes.slice(i, i + 4096));
  }
  return s;
}

/** Decodes a Huffman-coded string (RFC 7541 §5.2), rejecting EOS and bad padding. */
export function huffmanDecode(src: Uint8Array): string {
  const out: number[] = [];
  let node = 0;
  let depth = 0; // bits since the last complete symbol
  let ones = true; // ...and all of them were 1
  for (let i = 0; i < src.length; i++) {
    const byte = src[i];
    for (let b = 7; b >= 0; b--) {
      const bit = (byte >> b) & 1;
      const next = HUFFMAN_TRIE[2 * node + bit];
      if (next < 0) {
        const sym = -next - 1;
        if (sym === EOS) throw new HpackError("Huffman string contains EOS");
        out.push(sym);
        node = 0;
        depth = 0;
        ones = true;
      } else {
        node = next;
        depth++;
        if (bit === 0) ones = false;
      }
    }
  }
  if (depth > 7) throw new HpackError("Huffman padding longer than 7 bits");
  if (!ones) throw new HpackError("Huffman padding is not the EOS prefix");
  return byteString(out);
}

/** Huffman-codes a byte string (RFC 7541 §5.2, padded with EOS bits). */
export function huffmanEncode(s: string): Uint8Array {
  const out = new Uint8Array(huffmanLength(s));
  let acc = 0; // pending bits, at most 7 + 30: kept exact in a double
  let bits = 0;
  let o = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i) & 0xff;
    const len = HUFFMAN_LENGTHS[c];
    acc = acc * 2 ** len + HUFFMAN_CODES[c];
    bits += len;
    while (bits >= 8) {
      bits -= 8;
      const div = 2 ** bits;
      out[o++] = Math.floor(acc / div);
      acc %= div;
    }
  }
  if (bits > 0) out[o++] = acc * 2 ** (8 - bits) + (2 ** (8 - bits) - 1);
  return out;
}

/** The length in octets of `s` Huffman-coded. */
export function huffmanLength(s: string): number {
  let bits = 0;
  for (let i = 0; i < s.length; i++) bits += HUFFMAN_LENGTHS[s.charCodeAt(i) & 0xff];
  return Math.ceil(bits / 8);
}

/** Largest integer this implementation decodes (RFC 7541 §5.1 lets us pick a limit). */
const MAX_INT = 2 ** 32 - 1;

/**
 * Decodes an HPACK integer with an N-bit prefix at `buf[pos]`; returns the value and the
 * position after it.
 */
export function decodeInteger(buf: Uint8Array, pos: number, prefixBits: number): [number, number] {
  if (pos >= buf.length) throw new HpackError("truncated integer");
  const max = (1 << prefixBits) - 1;
  let value = buf[pos++] & max;
  if (value < max) return [value, pos];
  for (let shift = 0;; shift += 7) {
    if (pos >= buf.length) throw new HpackError("truncated integer");
    if (shift > 63) throw new HpackError("integer encoding too long");
    const b = buf[pos++];
    value += (b & 0x7f) * 2 ** shift;
    if (value > MAX_INT) throw new HpackError("integer overflow");
    if ((b & 0x80) === 0) return [value, pos];
  }
}

/** A growable output buffer. */
class Writer {
  buf = new Uint8Array(256);
  len = 0;

  #room(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
  }

  byte(b: number): void {
    this.#room(1);
    this.buf[this.len++] = b;
  }

  bytes(b: Uint8Array): void {
    this.#room(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }

  /** An integer with an N-bit prefix; `first` carries the representation's high bits. */
  integer(value: number, prefixBits: number, first: number): void {
    const max = (1 << prefixBits) - 1;
    if (value < max) return this.byte(first | value);
    this.byte(first | max);
    value -= max;
    while (value >= 128) {
      this.byte((value % 128) | 0x80);
      value = Math.floor(value / 128);
    }
    this.byte(value);
  }

  /** A string literal: raw, or Huffman-coded when that is shorter and `huffman` is set. */
  string(s: string, huffman: boolean): void {
    if (huffman && huffmanLength(s) < s.length) {
      const coded = huffmanEncode(s);
      this.integer(coded.length, 7, 0x80);
      return this.bytes(coded);
    }
    this.integer(s.length, 7, 0);
    this.#room(s.length);
    for (let i = 0; i < s.length; i++) this.buf[this.len++] = s.charCodeAt(i) & 0xff;
  }

  result(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}

/** Encodes an integer with an N-bit prefix (the prefix's other bits zero). */
export function encodeInteger(value: number, prefixBits: number, first = 0): Uint8Array {
  const w = new Writer();
  w.integer(value, prefixBits, first);
  return w.result();
}

/** The HPACK dynamic table (RFC 7541 §2.3.2, §4): newest entry first. */
export class DynamicTable {
  /** Newest first: entry `i` has HPACK index 62 + i. */
  readonly entries: [string, string][] = [];
  /** Sum of entry sizes (name + value octets + 32 each). */
  size = 0;
  #max: number;

  constructor(maxSize = 4096) {
    this.#max = maxSize;
  }

  get maxSize(): number {
    return this.#max;
  }

  /** Applies a size update, evicting entries that no longer fit. */
  resize(maxSize: number): void {
    this.#max = maxSize;
    this.#evict(0);
  }

  add(name: string, value: string): void {
    const size = name.length + value.length + 32;
    if (size > this.#max) {
      this.entries.length = 0;
      this.size = 0;
      return;
    }
    this.#evict(size);
    this.entries.unshift([name, value]);
    this.size += size;
  }

  /** The entry at HPACK index `index` (static or dynamic), or undefined. */
  lookup(index: number): readonly [string, string] | undefined {
    if (index >= 1 && index <= STATIC_TABLE.length) return STATIC_TABLE[index - 1];
    return this.entries[index - STATIC_TABLE.length - 1];
  }

  #evict(room: number): void {
    while (this.size + room > this.#max && this.entries.length > 0) {
      const [n, v] = this.entries.pop()!;
      this.size -= n.length + v.length + 32;
    }
  }
}

export interface HpackDecoderOptions {
  /**
   * The SETTINGS_HEADER_TABLE_SIZE this side advertised: the largest table the peer may
   * switch to. Default 4096 (the protocol default, also the initial table size).
   */
  maxTableSize?: number;
  /** Refuse a block whose decoded fields (octets + 32 each) exceed this. Default 1 MiB. */
  maxHeaderListSize?: number;
}

/**
 * Decodes header blocks from one peer, in order, keeping its dynamic table from block to
 * block (one decoder per connection direction).
 */
export class HpackDecoder {
  readonly table: DynamicTable;
  #limit: number;
  #maxList: number;

  constructor(opts: HpackDecoderOptions = {}) {
    this.#limit = opts.maxTableSize ?? 4096;
    this.#maxList = opts.maxHeaderListSize ?? 1 << 20;
    this.table = new DynamicTable(Math.min(4096, this.#limit));
  }

  /** Decodes one complete header block. Throws HpackError when it is malformed. */
  decode(block: Uint8Array): HeaderField[] {
    const fields: HeaderField[] = [];
    let listSize = 0;
    let pos = 0;
    while (pos < block.length) {
      const b = block[pos];
      let index: number;
      if (b & 0x80) {
        // Indexed header field (§6.1).
        [index, pos] = decodeInteger(block, pos, 7);
        const entry = this.#entry(index);
        fields.push({ name: entry[0], value: entry[1] });
      } else if ((b & 0xe0) === 0x20) {
        // Dynamic table size update (§6.3): only at the start of a block.
        if (fields.length > 0) throw new HpackError("table size update after a header field");
        let size: number;
        [size, pos] = decodeInteger(block, pos, 5);
        if (size > this.#limit) {
          throw new HpackError(`table size update to ${size} exceeds the limit ${this.#limit}`);
        }
        this.table.resize(size);
        continue;
      } else {
        // Literal (§6.2): with incremental indexing (01), never indexed (0001), or without
        // indexing (0000).
        const incremental = (b & 0xc0) === 0x40;
        const never = (b & 0xf0) === 0x10;
        [index, pos] = decodeInteger(block, pos, incremental ? 6 : 4);
        let name: string;
        if (index === 0) [name, pos] = this.#string(block, pos);
        else name = this.#entry(index)[0];
        let value: string;
        [value, pos] = this.#string(block, pos);
        if (incremental) this.table.add(name, value);
        fields.push(never ? { name, value, sensitive: true } : { name, value });
      }
      const f = fields[fields.length - 1];
      listSize += f.name.length + f.value.length + 32;
      if (listSize > this.#maxList) {
        throw new HpackError(`header list exceeds ${this.#maxList} octets`);
      }
    }
    return fields;
  }

  #entry(index: number): readonly [string, string] {
    const entry = index === 0 ? undefined : this.table.lookup(index);
    if (!entry) throw new HpackError(`invalid header index ${index}`);
    return entry;
  }

  #string(block: Uint8Array, pos: number): [string, number] {
    if (pos >= block.length) throw new HpackError("truncated string");
    const huffman = (block[pos] & 0x80) !== 0;
    let len: number;
    [len, pos] = decodeInteger(block, pos, 7);
    if (pos + len > block.length) throw new HpackError("truncated string");
    const raw = block.subarray(pos, pos + len);
    return [huffman ? huffmanDecode(raw) : byteString(raw), pos + len];
  }
}

export interface HpackEncoderOptions {
  /**
   * Use the dynamic table (literals with incremental indexing, indexed references to earlier
   * entries), like an ordinary HTTP/2 client. Default false: the encoder never adds to the
   * receiver's table, so blocks can be emitted, reordered or dropped independently.
   */
  dynamicTable?: boolean;
  /** The dynamic table's size when `dynamicTable` is set. Default 4096. */
  tableSize?: number;
  /** Huffman-code strings when that is shorter. Default false. */
  huffman?: boolean;
}

/** Encodes header blocks (RFC 7541). */
export class HpackEncoder {
  readonly table: DynamicTable | undefined;
  #huffman: boolean;
  #pendingSize: number | undefined;

  constructor(opts: HpackEncoderOptions = {}) {
    this.table = opts.dynamicTable ? new DynamicTable(opts.tableSize ?? 4096) : undefined;
    if (this.table && this.table.maxSize !== 4096) this.#pendingSize = this.table.maxSize;
    this.#huffman = opts.huffman ?? false;
  }

  /** Switches the dynamic table size; the next block starts with the size update. */
  setTableSize(size: number): void {
    if (!this.table) throw new Error("this encoder does not use the dynamic table");
    this.#pendingSize = size;
  }

  encode(fields: readonly HeaderField[]): Uint8Array {
    const w = new Writer();
    const table = this.table;
    if (table && this.#pendingSize !== undefined) {
      w.integer(this.#pendingSize, 5, 0x20);
      table.resize(this.#pendingSize);
      this.#pendingSize = undefined;
    }
    for (const { name, value, sensitive } of fields) {
      const exact = STATIC_PAIR.get(`${name}\0${value}`) ??
        (table ? this.#dynamicIndex(table, name, value) : undefined);
      if (exact !== undefined && !sensitive) {
        w.integer(exact, 7, 0x80);
        continue;
      }
      const nameIndex = STATIC_NAME.get(name) ??
        (table ? this.#dynamicIndex(table, name) : undefined) ?? 0;
      if (sensitive) w.integer(nameIndex, 4, 0x10);
      else if (table) w.integer(nameIndex, 6, 0x40);
      else w.integer(nameIndex, 4, 0x00);
      if (nameIndex === 0) w.string(name, this.#huffman);
      w.string(value, this.#huffman);
      if (table && !sensitive) table.add(name, value);
    }
    return w.result();
  }

  #dynamicIndex(table: DynamicTable, name: string, value?: string): number | undefined {
    const i = table.entries.findIndex(([n, v]) =>
      n === name && (value === undefined || v === value)
    );
    return i < 0 ? undefined : STATIC_TABLE.length + 1 + i;
  }
}
