/**
 * Bounded, seeded fuzzing of the protobuf decoding of every request the daemon accepts (the
 * CRI's runtime.v1 and the management services): whatever bytes a client sends, decoding
 * either gives a message or throws an Error (which the gRPC edge answers as a status), never
 * hangs, never throws a non-Error, and what it gives re-encodes to bytes that decode to the
 * same message. Inputs: random bytes, and random but well-formed protobuf field streams (every
 * wire type on every field number the schema uses and some it does not, nested messages,
 * packed runs, oversized and truncated lengths). The seed is fixed, so a failure names the
 * case that reproduces it; `K8SC_FUZZ_SEED` and `K8SC_FUZZ_CASES` widen a local run.
 */
import { describe, expect, it } from "../testing/bdd.ts";
import { cpuMs, FUZZ_SLOW_MS } from "../testing/cpu_time.ts";
import { type SeededRandom, seededRandom } from "../testing/seeded_random.ts";
import * as cri from "../gen/runtime/v1/api.ts";
import * as containers from "../gen/k8scontainerd/services/containers/v1/containers.ts";
import * as content from "../gen/k8scontainerd/services/content/v1/content.ts";
import * as events from "../gen/k8scontainerd/services/events/v1/events.ts";
import * as images from "../gen/k8scontainerd/services/images/v1/images.ts";
import * as leases from "../gen/k8scontainerd/services/leases/v1/leases.ts";
import * as namespaces from "../gen/k8scontainerd/services/namespaces/v1/namespace.ts";
import * as snapshots from "../gen/k8scontainerd/services/snapshots/v1/snapshots.ts";
import * as tasks from "../gen/k8scontainerd/services/tasks/v1/tasks.ts";
import * as version from "../gen/k8scontainerd/services/version/v1/version.ts";

interface Codec {
  encode(m: unknown): { finish(): Uint8Array };
  decode(b: Uint8Array): unknown;
}

/** Every generated `*Request` codec of a module. */
function requestCodecs(mod: Record<string, unknown>): [string, Codec][] {
  return Object.entries(mod).filter(([name, v]) =>
    name.endsWith("Request") && typeof v === "object" && v !== null &&
    typeof (v as Codec).decode === "function" && typeof (v as Codec).encode === "function"
  ) as [string, Codec][];
}

const MANAGEMENT: Record<string, unknown> = {
  containers,
  content,
  events,
  images,
  leases,
  namespaces,
  snapshots,
  tasks,
  version,
};

type Rng = SeededRandom;
const prng = seededRandom;

function varint(n: number): number[] {
  const out: number[] = [];
  let v = BigInt.asUintN(64, BigInt(Math.trunc(n)));
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v) b |= 0x80;
    out.push(b);
  } while (v);
  return out;
}

/** A random field stream: valid framing, arbitrary field numbers, wire types and payloads. */
function fieldStream(r: Rng, depth: number): number[] {
  const out: number[] = [];
  const fields = r.int(8);
  for (let i = 0; i < fields; i++) {
    // Mostly the low numbers the schema uses; sometimes large or reserved ones.
    const num = r.chance(0.85) ? 1 + r.int(20) : 1 + r.int(536870911);
    const wire = [0, 1, 2, 5][r.int(4)];
    out.push(...varint(num * 8 + wire));
    switch (wire) {
      case 0: {
        const v = r.chance(0.3) ? -1 - r.int(1000) : r.chance(0.2) ? 2 ** 53 : r.int(300);
        out.push(...varint(v));
        break;
      }
      case 1:
        for (let j = 0; j < 8; j++) out.push(r.int(256));
        break;
      case 5:
        for (let j = 0; j < 4; j++) out.push(r.int(256));
        break;
      case 2: {
        let body: number[];
        if (depth < 4 && r.chance(0.5)) body = fieldStream(r, depth + 1);
        else if (r.chance(0.3)) {
          body = Array.from({ length: r.int(6) }, () => varint(r.int(400))).flat();
        } else {
          body = Array.from(
            { length: r.int(24) },
            () => r.chance(0.8) ? 0x61 + r.int(26) : r.int(256),
          );
        }
        out.push(...varint(body.length), ...body);
        break;
      }
    }
  }
  return out;
}

/** Breaks framing on purpose: truncation, a length past the end, a bit flipped. */
function mangle(r: Rng, bytes: number[]): number[] {
  const b = [...bytes];
  switch (r.int(4)) {
    case 0:
      return b.slice(0, r.int(b.length + 1));
    case 1:
      return [...b, ...varint(1 * 8 + 2), ...varint(2 ** 31 - 1)];
    case 2:
      if (b.length) b[r.int(b.length)] ^= 1 << r.int(8);
      return b;
    default:
      return [...b, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01];
  }
}

function inputs(seed: number, cases: number): Uint8Array[] {
  const r = prng(seed);
  const out: Uint8Array[] = [new Uint8Array(0)];
  for (let i = 0; i < cases; i++) {
    const kind = r.int(3);
    const bytes = kind === 0
      ? Array.from({ length: r.int(64) }, () => r.int(256))
      : kind === 1
      ? fieldStream(r, 0)
      : mangle(r, fieldStream(r, 0));
    out.push(Uint8Array.from(bytes));
  }
  return out;
}

const SLOW_MS = FUZZ_SLOW_MS;
const SEED = Number(Deno.env.get("K8SC_FUZZ_SEED") ?? 20261202);
const CASES = Number(Deno.env.get("K8SC_FUZZ_CASES") ?? 300);

function hex(b: Uint8Array): string {
  return [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
}

/** Runs every input through one codec; returns how many decoded and how many were refused. */
function fuzzCodec(name: string, codec: Codec, corpus: Uint8Array[]) {
  let decoded = 0, refused = 0;
  for (const [i, input] of corpus.entries()) {
    const where = `${name} case ${i} (seed ${SEED}) input ${hex(input)}`;
    let msg: unknown;
    let threw = false, failure: unknown;
    const t0 = cpuMs();
    try {
      msg = codec.decode(input);
    } catch (e) {
      threw = true;
      failure = e;
    }
    const ms = cpuMs() - t0;
    if (ms > SLOW_MS) throw new Error(`${where}: decoding took ${ms.toFixed(0)} ms of CPU`);
    if (threw) {
      if (!(failure instanceof Error)) {
        throw new Error(`${where}: threw a non-Error ${String(failure)}`);
      }
      refused++;
      continue;
    }
    decoded++;
    let again: unknown;
    try {
      again = codec.decode(codec.encode(msg).finish());
    } catch (e) {
      throw new Error(`${where}: re-encoding what it decoded failed: ${(e as Error).message}`);
    }
    try {
      expect(again).toEqual(msg);
    } catch (e) {
      throw new Error(`${where}: decode(encode(m)) differs from m: ${(e as Error).message}`);
    }
  }
  return { decoded, refused };
}

describe("request decoding under fuzzed input", () => {
  const corpus = inputs(SEED, CASES);

  it("every CRI request type decodes or refuses each input, and round-trips what it decodes", () => {
    const codecs = requestCodecs(cri as unknown as Record<string, unknown>);
    expect(codecs.length).toBeGreaterThanOrEqual(40);
    let decoded = 0, refused = 0;
    for (const [name, codec] of codecs) {
      const r = fuzzCodec(`runtime.v1.${name}`, codec, corpus);
      decoded += r.decoded;
      refused += r.refused;
    }
    // The corpus exercises both paths (a generator that only made garbage would test little).
    expect(decoded).toBeGreaterThan(codecs.length * CASES / 4);
    expect(refused).toBeGreaterThan(codecs.length * CASES / 20);
  });

  it("every management request type does the same", () => {
    let n = 0;
    for (const [svc, mod] of Object.entries(MANAGEMENT)) {
      for (const [name, codec] of requestCodecs(mod as Record<string, unknown>)) {
        fuzzCodec(`${svc}.${name}`, codec, corpus);
        n++;
      }
    }
    expect(n).toBeGreaterThanOrEqual(40);
  });
});
