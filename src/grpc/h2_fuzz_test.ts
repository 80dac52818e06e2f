/**
 * Bounded, seeded fuzzing of the native server's HTTP/2 parsing: the frame decoder (whatever
 * the chunking, well-formed input gives the same frames; any input gives frames or a
 * FrameSizeError, nothing else) and a whole H2Connection fed damaged client streams (it
 * either serves or ends the connection with GOAWAY; never an exception, a hang, or output
 * that is not HTTP/2 frames). `K8SC_FUZZ_SEED` / `K8SC_FUZZ_CASES` widen a local run.
 */
import { describe, expect, isEmulated, it } from "../testing/bdd.ts";
import { cpuMs, FUZZ_SLOW_MS } from "../testing/cpu_time.ts";
import { type SeededRandom, seededRandom } from "../testing/seeded_random.ts";
import { HpackEncoder } from "./hpack.ts";
import {
  encodeFrame,
  FRAME,
  type Frame,
  FrameDecoder,
  FrameSizeError,
  PREFACE,
} from "./h2_frames.ts";
import { H2Connection, type H2Transport } from "./h2_connection.ts";
import { encodeMessage } from "./grpc_message.ts";

const SLOW_MS = FUZZ_SLOW_MS;
// Wall time for a connection to close after bad input: a hang, not a busy machine.
const HANG_MS = isEmulated ? 20_000 : 2_000;
const SEED = Number(Deno.env.get("K8SC_FUZZ_SEED") ?? 20261203);
const CASES = Number(Deno.env.get("K8SC_FUZZ_CASES") ?? 2000);

const hex = (b: Uint8Array) => [...b].map((x) => x.toString(16).padStart(2, "0")).join("");

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** A well-formed client stream: preface, SETTINGS, requests (some split by CONTINUATION), PINGs. */
function wellFormed(r: SeededRandom): Uint8Array {
  const enc = new HpackEncoder({ dynamicTable: r.chance(0.5), huffman: r.chance(0.5) });
  const parts = [PREFACE, encodeFrame(FRAME.SETTINGS, 0, 0)];
  let stream = 1;
  for (let i = 0, n = 1 + r.int(5); i < n; i++) {
    const block = enc.encode([
      { name: ":method", value: "POST" },
      { name: ":scheme", value: "http" },
      { name: ":path", value: r.chance(0.7) ? "/t.T/Echo" : "/t.T/Nope" },
      { name: ":authority", value: r.chance(0.5) ? "localhost" : "/run/x.sock" },
      { name: "content-type", value: "application/grpc" },
      { name: "te", value: "trailers" },
    ]);
    if (r.chance(0.3) && block.length > 2) {
      const cut = 1 + r.int(block.length - 1);
      parts.push(encodeFrame(FRAME.HEADERS, 0, stream, block.subarray(0, cut)));
      parts.push(encodeFrame(FRAME.CONTINUATION, 4, stream, block.subarray(cut)));
    } else parts.push(encodeFrame(FRAME.HEADERS, 4, stream, block));
    parts.push(encodeFrame(FRAME.DATA, 1, stream, encodeMessage(r.bytes(r.int(40)))));
    if (r.chance(0.3)) parts.push(encodeFrame(FRAME.PING, 0, 0, r.bytes(8)));
    stream += 2;
  }
  return concat(parts);
}

function damage(r: SeededRandom, good: Uint8Array): Uint8Array {
  switch (r.int(4)) {
    case 0: {
      const input = good.slice();
      for (let k = 0, n = 1 + r.int(4); k < n; k++) input[r.int(input.length)] ^= 1 << r.int(8);
      return input;
    }
    case 1:
      return concat([
        good.subarray(0, PREFACE.length + 9),
        ...Array.from(
          { length: 1 + r.int(8) },
          () => encodeFrame(r.int(12), r.int(256), r.int(8), r.bytes(r.int(60))),
        ),
      ]);
    case 2:
      return good.subarray(0, r.int(good.length));
    default:
      return concat([
        good.subarray(0, PREFACE.length),
        Uint8Array.of(0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 1),
      ]);
  }
}

/** Frames of `input` pushed in `chunks`, as hex lines, or the error. */
function decodeAll(input: Uint8Array, r: SeededRandom | undefined): string[] | Error {
  const d = new FrameDecoder(16384);
  const out: string[] = [];
  const take = (f: Frame) => void out.push(`${f.type}/${f.flags}/${f.streamId}/${hex(f.payload)}`);
  try {
    for (let pos = 0; pos < input.length;) {
      const n = r ? 1 + r.int(Math.max(1, input.length - pos)) : input.length - pos;
      d.push(input.subarray(pos, pos + n), take);
      pos += n;
    }
  } catch (e) {
    return e as Error;
  }
  return out;
}

/** An in-memory transport: yields `input` in random chunks, then EOF; keeps what is written. */
class Feed implements H2Transport {
  written: Uint8Array[] = [];
  #pos = 0;
  closed = false;
  constructor(readonly input: Uint8Array, readonly r: SeededRandom) {}
  read(p: Uint8Array): Promise<number | null> {
    if (this.closed) return Promise.reject(new Error("closed"));
    if (this.#pos >= this.input.length) return Promise.resolve(null);
    const n = Math.min(p.length, 1 + this.r.int(64), this.input.length - this.#pos);
    p.set(this.input.subarray(this.#pos, this.#pos + n));
    this.#pos += n;
    return Promise.resolve(n);
  }
  write(p: Uint8Array): Promise<number> {
    if (this.closed) return Promise.reject(new Error("closed"));
    this.written.push(p.slice());
    return Promise.resolve(p.length);
  }
  close(): void {
    this.closed = true;
  }
}

describe("the native HTTP/2 parsing under fuzzed input", () => {
  it("the frame decoder gives the same frames whatever the chunking", () => {
    const r = seededRandom(SEED);
    for (let i = 0; i < CASES / 4; i++) {
      // The decoder starts after the preface (the connection checks that).
      const input = wellFormed(r).subarray(PREFACE.length);
      const whole = decodeAll(input, undefined);
      const chunked = decodeAll(input, r);
      if (whole instanceof Error || chunked instanceof Error) {
        throw new Error(`case ${i} (seed ${SEED}) refused a well-formed stream`);
      }
      expect(chunked).toEqual(whole);
    }
  });

  it("the frame decoder refuses only with FrameSizeError, quickly", () => {
    const r = seededRandom(SEED + 1);
    let refused = 0;
    for (let i = 0; i < CASES; i++) {
      const input = r.chance(0.5)
        ? r.bytes(r.int(200))
        : damage(r, wellFormed(r)).subarray(PREFACE.length);
      const t0 = cpuMs();
      const res = decodeAll(input, r);
      expect(cpuMs() - t0).toBeLessThan(SLOW_MS);
      if (res instanceof Error) {
        if (!(res instanceof FrameSizeError)) {
          throw new Error(`case ${i} (seed ${SEED}) ${hex(input)}: ${res.stack}`);
        }
        refused++;
      }
    }
    expect(refused).toBeGreaterThan(CASES / 10);
  });

  it("a connection fed damaged streams serves or ends with GOAWAY, never throws or hangs", async () => {
    const r = seededRandom(SEED + 2);
    let goaways = 0;
    for (let i = 0; i < CASES / 4; i++) {
      const input = r.chance(0.2) ? wellFormed(r) : damage(r, wellFormed(r));
      const feed = new Feed(input, r);
      const h2 = new H2Connection(feed, {
        onStream: (s) => {
          s.ondata = (chunk, end) => {
            s.consume(chunk.length);
            if (!end) return;
            s.respond([{ name: ":status", value: "200" }]);
            s.write(encodeMessage(new Uint8Array(3)));
            s.end([{ name: "grpc-status", value: "0" }]);
          };
        },
      });
      const t0 = cpuMs();
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<"hang">((
        res,
      ) => (timer = setTimeout(() => res("hang"), HANG_MS)));
      const how = await Promise.race([h2.closed.then(() => "closed" as const), timeout]);
      clearTimeout(timer);
      if (how === "hang") throw new Error(`case ${i} (seed ${SEED}) hung: ${hex(input)}`);
      expect(cpuMs() - t0).toBeLessThan(SLOW_MS * 5);
      // What came back is HTTP/2 frames, nothing else.
      const out = decodeAll(concat(feed.written), undefined);
      if (out instanceof Error) {
        throw new Error(`case ${i} (seed ${SEED}) wrote a bad frame: ${out.message}`);
      }
      if (out.some((f) => f.startsWith(`${FRAME.GOAWAY}/`))) goaways++;
    }
    expect(goaways).toBeGreaterThan(CASES / 40);
  });
});
