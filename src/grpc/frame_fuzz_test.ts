/**
 * Bounded, seeded fuzzing of what parses client bytes before grpc-js sees them: the HPACK
 * decoder and the client-stream rewriter (HTTP/2 frames, header blocks, the preface). Any
 * input either passes or fails with the edge's own typed errors (HpackError,
 * ProxyProtocolError) that end only that connection; never another exception, a hang, or a
 * header list past the decoder's limits. Well-formed frame streams, whatever the chunking,
 * come out with the same frames as a single push gives. `K8SC_FUZZ_SEED` / `K8SC_FUZZ_CASES`
 * widen a local run.
 */
import { describe, expect, it } from "../testing/bdd.ts";
import { cpuMs, FUZZ_SLOW_MS } from "../testing/cpu_time.ts";
import { type SeededRandom, seededRandom } from "../testing/seeded_random.ts";
import { HpackDecoder, HpackEncoder, HpackError } from "./hpack.ts";
import { ClientStreamRewriter, ProxyProtocolError } from "./authority_proxy.ts";

const SLOW_MS = FUZZ_SLOW_MS;
const SEED = Number(Deno.env.get("K8SC_FUZZ_SEED") ?? 20261202);
const CASES = Number(Deno.env.get("K8SC_FUZZ_CASES") ?? 2000);

type Rng = SeededRandom;
const prng = seededRandom;

const bytes = (r: Rng, n: number) => r.bytes(n);
const hex = (b: Uint8Array) => [...b].map((x) => x.toString(16).padStart(2, "0")).join("");

const PREFACE = new TextEncoder().encode("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

function frame(type: number, flags: number, stream: number, payload: Uint8Array): Uint8Array {
  const f = new Uint8Array(9 + payload.length);
  f[0] = payload.length >> 16;
  f[1] = (payload.length >> 8) & 0xff;
  f[2] = payload.length & 0xff;
  f[3] = type;
  f[4] = flags;
  new DataView(f.buffer).setUint32(5, stream & 0x7fffffff);
  f.set(payload, 9);
  return f;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** A header block an HPACK encoder made, for a gRPC request with a random authority. */
function headerBlock(r: Rng, enc: HpackEncoder): Uint8Array {
  const authorities = ["localhost", "/run/k8scontainerd/k8scontainerd.sock", "x:1", ""];
  return enc.encode([
    { name: ":method", value: "POST" },
    { name: ":scheme", value: "http" },
    { name: ":path", value: "/runtime.v1.RuntimeService/Version" },
    { name: ":authority", value: authorities[r.int(authorities.length)] },
    { name: "content-type", value: "application/grpc" },
    { name: "te", value: "trailers" },
    ...(r.chance(0.5) ? [{ name: "grpc-timeout", value: `${r.int(1000)}m` }] : []),
  ]);
}

/** A well-formed client stream: preface, SETTINGS, then HEADERS (+CONTINUATION), DATA, PING… */
function wellFormed(r: Rng): Uint8Array {
  const enc = new HpackEncoder({ dynamicTable: r.chance(0.5), huffman: r.chance(0.5) });
  const parts = [PREFACE, frame(4, 0, 0, new Uint8Array(0))];
  let stream = 1;
  for (let i = 0, n = 1 + r.int(5); i < n; i++) {
    const block = headerBlock(r, enc);
    if (r.chance(0.3) && block.length > 2) {
      const cut = 1 + r.int(block.length - 1);
      parts.push(frame(1, 0, stream, block.subarray(0, cut)));
      parts.push(frame(9, 4, stream, block.subarray(cut)));
    } else {
      parts.push(frame(1, 4, stream, block));
    }
    parts.push(frame(0, 1, stream, bytes(r, 5 + r.int(40))));
    if (r.chance(0.3)) parts.push(frame(6, 0, 0, bytes(r, 8)));
    stream += 2;
  }
  return concat(parts);
}

/** Pushes `input` in random chunks; returns the output bytes or the error thrown. */
function run(input: Uint8Array, r: Rng | undefined): Uint8Array | Error {
  const rw = new ClientStreamRewriter();
  const out: Uint8Array[] = [];
  try {
    for (let pos = 0; pos < input.length;) {
      const n = r ? 1 + r.int(Math.max(1, input.length - pos)) : input.length - pos;
      for (const piece of rw.push(input.subarray(pos, pos + n))) out.push(piece.slice());
      pos += n;
    }
  } catch (e) {
    return e as Error;
  }
  return concat(out);
}

describe("the edge's parsers under fuzzed input", () => {
  it("the HPACK decoder accepts or refuses with HpackError, within its limits", () => {
    const r = prng(SEED);
    let refused = 0;
    for (let i = 0; i < CASES; i++) {
      const dec = new HpackDecoder({ maxTableSize: 4096 });
      // Random bytes, or a real block with a byte changed or cut short.
      let input = bytes(r, r.int(80));
      if (r.chance(0.5)) {
        const real = headerBlock(r, new HpackEncoder({ dynamicTable: true, huffman: true }));
        input = real.slice(0, r.int(real.length + 1));
        if (input.length && r.chance(0.5)) input[r.int(input.length)] ^= 1 << r.int(8);
      }
      const t0 = cpuMs();
      try {
        const fields = dec.decode(input);
        const size = fields.reduce((n, f) => n + f.name.length + f.value.length + 32, 0);
        expect(size).toBeLessThan(1 << 20);
      } catch (e) {
        if (!(e instanceof HpackError)) {
          throw new Error(`case ${i} (seed ${SEED}) ${hex(input)}: ${(e as Error)?.stack ?? e}`);
        }
        refused++;
      }
      expect(cpuMs() - t0).toBeLessThan(SLOW_MS);
    }
    expect(refused).toBeGreaterThan(CASES / 10);
  });

  it("the client-stream rewriter passes well-formed streams the same whatever the chunking", () => {
    const r = prng(SEED + 1);
    for (let i = 0; i < CASES / 4; i++) {
      const input = wellFormed(r);
      const whole = run(input, undefined);
      if (whole instanceof Error) {
        throw new Error(`case ${i} (seed ${SEED}) refused a well-formed stream: ${whole.message}`);
      }
      const chunked = run(input, r);
      if (chunked instanceof Error) {
        throw new Error(`case ${i} (seed ${SEED}) refused it chunked: ${chunked.message}`);
      }
      expect(hex(chunked)).toBe(hex(whole));
    }
  });

  it("the client-stream rewriter refuses damaged streams only with the edge's errors", () => {
    const r = prng(SEED + 2);
    let refused = 0;
    for (let i = 0; i < CASES; i++) {
      const good = wellFormed(r);
      let input: Uint8Array;
      switch (r.int(4)) {
        case 0: // flipped bits anywhere
          input = good.slice();
          for (let k = 0, n = 1 + r.int(4); k < n; k++) input[r.int(input.length)] ^= 1 << r.int(8);
          break;
        case 1: // random frames after a valid start
          input = concat([
            good.subarray(0, PREFACE.length + 9),
            ...Array.from(
              { length: 1 + r.int(6) },
              () => frame(r.int(12), r.int(256), r.int(8), bytes(r, r.int(60))),
            ),
          ]);
          break;
        case 2: // garbage instead of the preface
          input = concat([bytes(r, 1 + r.int(40)), good]);
          break;
        default: // an oversized frame header
          input = concat([
            good.subarray(0, PREFACE.length),
            Uint8Array.of(0xff, 0xff, 0xff, 1, 4, 0, 0, 0, 1),
          ]);
      }
      const t0 = cpuMs();
      const res = run(input, r);
      expect(cpuMs() - t0).toBeLessThan(SLOW_MS);
      if (res instanceof Error) {
        if (!(res instanceof ProxyProtocolError) && !(res instanceof HpackError)) {
          throw new Error(`case ${i} (seed ${SEED}) ${hex(input)}: ${res.stack ?? res}`);
        }
        refused++;
      }
    }
    expect(refused).toBeGreaterThan(CASES / 4);
  });
});
