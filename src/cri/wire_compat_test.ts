/**
 * Proves that the project's own CRI schema (proto/runtime/v1/api.proto) and the code generated
 * from it (src/gen/runtime/v1/api.ts) are wire-compatible with the upstream Kubernetes CRI v1
 * schema kept outside the repo at ../shared/reference/cri-api/api.proto. Skipped, with the
 * reason printed, when that reference is absent.
 *
 * 1. Descriptors: protoc compiles both files to FileDescriptorSets; every service/method,
 *    message (nested and map-entry types included), field and enum must match.
 * 2. Bytes: one populated instance of every message is encoded with our generated code and
 *    decoded by protoc against both schemas (the text must be identical and free of unknown
 *    fields); protoc then re-encodes that text with the reference schema and our generated
 *    code must decode it back to the original value.
 *
 * The reference is never copied into the repo: a sanitised copy (options protoc 3.21 cannot
 * compile, such as gogoproto and debug_redact, removed) lives in a temp dir for the run only.
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { BinaryReader, BinaryWriter } from "@bufbuild/protobuf/wire";
import {
  type DescriptorProto,
  type EnumDescriptorProto,
  type FieldDescriptorProto,
  FieldDescriptorProto_Label as Label,
  FieldDescriptorProto_Type as Type,
  type FileDescriptorProto,
  FileDescriptorSet,
} from "ts-proto-descriptors";
import * as cri from "../gen/runtime/v1/api.ts";
import { afterAll, beforeAll, describe, expect, it } from "../testing/bdd.ts";

const repoRoot = fileURLToPath(new URL("../..", import.meta.url));
const REFERENCE = join(repoRoot, "..", "shared", "reference", "cri-api", "api.proto");
const OURS_ROOT = join(repoRoot, "proto");
/** Import path of the schema under both roots (ours in proto/, the reference copy in tmp). */
const SCHEMA = "runtime/v1/api.proto";
const PKG = "runtime.v1";
const EXPECTED_RPCS = 41;

function referencePresent(): boolean {
  try {
    return Deno.statSync(REFERENCE).isFile;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// protoc helpers
// ---------------------------------------------------------------------------------------------

interface Run {
  stdout: Uint8Array;
  stderr: string;
}

async function protoc(args: string[], stdin?: Uint8Array): Promise<Run> {
  const child = new Deno.Command("protoc", {
    args,
    stdin: stdin ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin) {
    const w = child.stdin.getWriter();
    await w.write(stdin);
    await w.close();
  }
  const out = await child.output();
  const stderr = new TextDecoder().decode(out.stderr);
  if (!out.success) throw new Error(`protoc ${args.join(" ")} failed:\n${stderr}`);
  return { stdout: out.stdout, stderr };
}

/**
 * The reference with everything protoc 3.21 cannot compile and that does not affect the wire
 * removed: gogoproto imports and options, and the `debug_redact` field option.
 */
function sanitizeReference(text: string): string {
  const dropOption = (opt: string) => /\(gogoproto\.|^\s*debug_redact\s*=/.test(opt);
  return text.split("\n").map((line) => {
    if (/^\s*import\s+"github\.com\/gogo\/protobuf\/gogoproto\/gogo\.proto"\s*;/.test(line)) {
      return "";
    }
    if (/^\s*option\s+\(gogoproto\.[^)]*\)\s*=.*;/.test(line)) return "";
    // Field options: `type name = N [a, b];` — keep the options that protoc knows.
    return line.replace(/(=\s*\d+\s*)\[([^\]]*)\]/, (_m, head: string, opts: string) => {
      const kept = opts.split(",").filter((o) => o.trim() !== "" && !dropOption(o));
      return kept.length ? `${head}[${kept.join(",")}]` : head;
    });
  }).join("\n");
}

// ---------------------------------------------------------------------------------------------
// Descriptor comparison
// ---------------------------------------------------------------------------------------------

/** ts-proto-descriptors keeps defaults on the prototype, so own keys mean "set on the wire". */
function has<T extends object>(o: T, key: keyof T): boolean {
  return Object.hasOwn(o, key);
}

function collectMessages(
  prefix: string,
  list: DescriptorProto[],
  out = new Map<string, DescriptorProto>(),
): Map<string, DescriptorProto> {
  for (const m of list) {
    const name = `${prefix}.${m.name}`;
    out.set(name, m);
    collectMessages(name, m.nestedType, out);
  }
  return out;
}

function collectEnums(file: FileDescriptorProto): Map<string, EnumDescriptorProto> {
  const out = new Map<string, EnumDescriptorProto>();
  for (const e of file.enumType) out.set(`${file.package}.${e.name}`, e);
  for (const [name, m] of collectMessages(file.package, file.messageType)) {
    for (const e of m.enumType) out.set(`${name}.${e.name}`, e);
  }
  return out;
}

function setDiff(what: string, ref: Iterable<string>, ours: Iterable<string>): string[] {
  const r = new Set(ref), o = new Set(ours);
  return [
    ...[...r].filter((x) => !o.has(x)).map((x) => `${what} ${x}: missing from ours`),
    ...[...o].filter((x) => !r.has(x)).map((x) => `${what} ${x}: not in the reference`),
  ];
}

function fieldFacts(f: FieldDescriptorProto): Record<string, unknown> {
  return {
    name: f.name,
    label: Label[f.label] ?? f.label,
    type: Type[f.type] ?? f.type,
    type_name: f.typeName,
    oneof_index: has(f, "oneofIndex") ? f.oneofIndex : "none",
    proto3_optional: f.proto3Optional,
    json_name: f.jsonName,
    packed: f.options && has(f.options, "packed") ? f.options.packed : "default",
    default_value: f.defaultValue,
    extendee: f.extendee,
  };
}

function compareMessages(ref: FileDescriptorProto, ours: FileDescriptorProto): string[] {
  const rm = collectMessages(ref.package, ref.messageType);
  const om = collectMessages(ours.package, ours.messageType);
  const diffs = setDiff("message", rm.keys(), om.keys());
  for (const [name, r] of rm) {
    const o = om.get(name);
    if (!o) continue;
    if (!!r.options?.mapEntry !== !!o.options?.mapEntry) diffs.push(`${name}: map_entry differs`);
    const rOneofs = r.oneofDecl.map((d) => d.name).join(",");
    const oOneofs = o.oneofDecl.map((d) => d.name).join(",");
    if (rOneofs !== oOneofs) {
      diffs.push(`${name}: oneofs differ ([${rOneofs}] vs ours [${oOneofs}])`);
    }
    const rf = new Map(r.field.map((f) => [f.number, f]));
    const of = new Map(o.field.map((f) => [f.number, f]));
    for (const [num, f] of rf) {
      const g = of.get(num);
      if (!g) {
        diffs.push(`${name}.field ${num} (${f.name}): missing from ours`);
        continue;
      }
      const a = fieldFacts(f), b = fieldFacts(g);
      for (const k of Object.keys(a)) {
        if (a[k] !== b[k]) {
          diffs.push(
            `${name}.field ${num} (${f.name}): ${k} differs (reference ${String(a[k])}, ours ${
              String(b[k])
            })`,
          );
        }
      }
    }
    for (const [num, g] of of) {
      if (!rf.has(num)) diffs.push(`${name}.field ${num} (${g.name}): not in the reference`);
    }
  }
  return diffs;
}

function compareEnums(ref: FileDescriptorProto, ours: FileDescriptorProto): string[] {
  const re = collectEnums(ref), oe = collectEnums(ours);
  const diffs = setDiff("enum", re.keys(), oe.keys());
  for (const [name, r] of re) {
    const o = oe.get(name);
    if (!o) continue;
    if (!!r.options?.allowAlias !== !!o.options?.allowAlias) {
      diffs.push(`${name}: allow_alias differs`);
    }
    const rv = new Map(r.value.map((v) => [v.name, v.number]));
    const ov = new Map(o.value.map((v) => [v.name, v.number]));
    diffs.push(...setDiff(`${name} value`, rv.keys(), ov.keys()));
    for (const [v, n] of rv) {
      if (ov.has(v) && ov.get(v) !== n) {
        diffs.push(`${name}.${v}: number differs (reference ${n}, ours ${ov.get(v)})`);
      }
    }
  }
  return diffs;
}

function compareServices(ref: FileDescriptorProto, ours: FileDescriptorProto): string[] {
  const diffs = setDiff("service", ref.service.map((s) => s.name), ours.service.map((s) => s.name));
  for (const rs of ref.service) {
    const os = ours.service.find((s) => s.name === rs.name);
    if (!os) continue;
    const svc = `${ref.package}.${rs.name}`;
    diffs.push(
      ...setDiff(`rpc ${svc}`, rs.method.map((m) => m.name), os.method.map((m) => m.name)),
    );
    for (const rm of rs.method) {
      const om = os.method.find((m) => m.name === rm.name);
      if (!om) continue;
      const facts = (m: typeof rm) => ({
        input_type: m.inputType,
        output_type: m.outputType,
        client_streaming: m.clientStreaming,
        server_streaming: m.serverStreaming,
      });
      const a: Record<string, unknown> = facts(rm), b: Record<string, unknown> = facts(om);
      for (const k of Object.keys(a)) {
        if (a[k] !== b[k]) {
          diffs.push(`rpc ${svc}.${rm.name}: ${k} differs (reference ${a[k]}, ours ${b[k]})`);
        }
      }
    }
  }
  return diffs;
}

// ---------------------------------------------------------------------------------------------
// Populated sample messages, built from the reference descriptors
// ---------------------------------------------------------------------------------------------

interface Codec {
  encode(message: unknown, writer?: BinaryWriter): BinaryWriter;
  decode(input: Uint8Array): unknown;
  fromPartial(object: unknown): unknown;
  create(): Record<string, unknown>;
}

function codecFor(fullName: string): Codec | undefined {
  // runtime.v1.Outer.Inner -> Outer_Inner, as ts-proto names nested types.
  const exportName = fullName.slice(PKG.length + 1).replaceAll(".", "_");
  const c = (cri as Record<string, unknown>)[exportName] as Partial<Codec> | undefined;
  return c && typeof c.encode === "function" && typeof c.fromPartial === "function"
    ? c as Codec
    : undefined;
}

/** ts-proto's property name for a field (its `snakeToCamel` with the default options). */
function propName(field: string): string {
  if (!field.includes("_")) return field;
  const hasLower = /[a-z]/.test(field);
  return field.split("_").map((w, i) => {
    const word = hasLower ? w : w.toLowerCase();
    return i === 0 ? word : word.charAt(0).toUpperCase() + word.slice(1);
  }).join("");
}

class Sampler {
  #n = 0;
  readonly problems: string[] = [];
  constructor(
    readonly messages: Map<string, DescriptorProto>,
    readonly enums: Map<string, EnumDescriptorProto>,
  ) {}

  scalar(f: FieldDescriptorProto, depth: number): unknown {
    const n = ++this.#n;
    const neg = n % 2 === 1;
    switch (f.type) {
      case Type.TYPE_STRING:
        return `s${n}-\u00e9`;
      case Type.TYPE_BYTES:
        return new Uint8Array([n & 0xff, 0, 0xff]);
      case Type.TYPE_BOOL:
        return true;
      case Type.TYPE_INT32:
      case Type.TYPE_SINT32:
      case Type.TYPE_SFIXED32:
        return neg ? -n : n;
      case Type.TYPE_UINT32:
      case Type.TYPE_FIXED32:
        return 0x8000_0000 + n;
      case Type.TYPE_INT64:
      case Type.TYPE_SINT64:
      case Type.TYPE_SFIXED64:
        return (neg ? -1n : 1n) * (1_000_000_000_000n + BigInt(n));
      case Type.TYPE_UINT64:
      case Type.TYPE_FIXED64:
        return (1n << 63n) + BigInt(n);
      case Type.TYPE_DOUBLE:
      case Type.TYPE_FLOAT:
        return n + 0.5;
      case Type.TYPE_ENUM: {
        const e = this.enums.get(f.typeName.slice(1));
        if (!e) throw new Error(`enum ${f.typeName} not found`);
        const nonZero = e.value.filter((v) => v.number !== 0);
        return nonZero.length ? nonZero[n % nonZero.length].number : 0;
      }
      case Type.TYPE_MESSAGE:
        return this.message(f.typeName.slice(1), depth + 1);
      default:
        throw new Error(`field type ${Type[f.type]} not handled by the sampler`);
    }
  }

  /** A populated plain object for `fullName`; below depth 1 nested messages are left empty. */
  message(fullName: string, depth = 0): Record<string, unknown> {
    const d = this.messages.get(fullName);
    if (!d) throw new Error(`message ${fullName} not found`);
    const out: Record<string, unknown> = {};
    if (depth > 1) return out;
    const codec = codecFor(fullName);
    const known = codec ? codec.create() : {};
    if (!codec) this.problems.push(`${fullName}: no generated codec exported`);
    for (const f of d.field) {
      const prop = propName(f.name);
      if (!(prop in known)) {
        this.problems.push(`${fullName}.${f.name}: generated type has no property ${prop}`);
      }
      const entry = f.type === Type.TYPE_MESSAGE
        ? this.messages.get(f.typeName.slice(1))
        : undefined;
      if (f.label === Label.LABEL_REPEATED && entry?.options?.mapEntry) {
        const [k, v] = [
          entry.field.find((x) => x.number === 1)!,
          entry.field.find((x) => x.number === 2)!,
        ];
        out[prop] = { [String(this.scalar(k, depth))]: this.scalar(v, depth) };
      } else if (f.label === Label.LABEL_REPEATED) {
        out[prop] = [this.scalar(f, depth), this.scalar(f, depth)];
      } else {
        out[prop] = this.scalar(f, depth);
      }
    }
    return out;
  }
}

// ---------------------------------------------------------------------------------------------
// Text-format helpers
// ---------------------------------------------------------------------------------------------

/** Splits protoc's text output of a Batch into its top-level `m_<Name> { … }` blocks. */
function sections(text: string): Map<string, string> {
  const out = new Map<string, string>();
  let name: string | undefined;
  let body: string[] = [];
  for (const line of text.split("\n")) {
    const open = /^m_(\w+) \{$/.exec(line);
    if (open) {
      name = open[1];
      body = [];
    } else if (line === "}" && name !== undefined) {
      out.set(name, body.join("\n"));
      name = undefined;
    } else if (name !== undefined) body.push(line);
  }
  return out;
}

/** protoc prints fields it has no name for as bare numbers: `12: 5` or `12 {`. */
const UNKNOWN_FIELD = /^\s*\d+\s*(:|\{)/;

/** The first line where two text dumps part, with its path of enclosing blocks. */
function firstDifference(ref: string, ours: string): string {
  const a = ref.split("\n"), b = ours.split("\n");
  const path: string[] = [];
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    if (a[i] !== b[i]) {
      const where = path.length ? ` (in ${path.join(" > ")})` : "";
      return `line ${i + 1}${where}: reference ${JSON.stringify(a[i] ?? "<end>")}, ours ${
        JSON.stringify(b[i] ?? "<end>")
      }`;
    }
    const open = /^\s*(\w+) \{$/.exec(a[i]);
    if (open) path.push(open[1]);
    else if (/^\s*\}$/.test(a[i])) path.pop();
  }
  return "identical";
}

// ---------------------------------------------------------------------------------------------
// The suite
// ---------------------------------------------------------------------------------------------

describe.skipIf(
  !referencePresent(),
  `reference schema not found at ${REFERENCE} (needs the ../shared checkout)`,
)("CRI v1 wire compatibility with the upstream runtime.v1 schema", () => {
  let tmp = "";
  let refRoot = "";
  let ref!: FileDescriptorProto;
  let ours!: FileDescriptorProto;

  async function descriptor(root: string): Promise<FileDescriptorProto> {
    const out = join(tmp, `${crypto.randomUUID()}.pb`);
    await protoc([`-I${root}`, "--include_imports", `--descriptor_set_out=${out}`, SCHEMA]);
    const set = FileDescriptorSet.decode(await Deno.readFile(out));
    const file = set.file.find((f) => f.name === SCHEMA);
    if (!file) throw new Error(`${SCHEMA} missing from the descriptor set of ${root}`);
    return file;
  }

  beforeAll(async () => {
    tmp = await Deno.makeTempDir({ prefix: "k8scontainerd-wirecompat-" });
    refRoot = join(tmp, "ref");
    await Deno.mkdir(join(refRoot, "runtime", "v1"), { recursive: true });
    await Deno.writeTextFile(
      join(refRoot, SCHEMA),
      sanitizeReference(await Deno.readTextFile(REFERENCE)),
    );
    [ref, ours] = await Promise.all([descriptor(refRoot), descriptor(OURS_ROOT)]);
  });

  afterAll(async () => {
    if (tmp) await Deno.remove(tmp, { recursive: true });
  });

  it("has the same file-level package and syntax", () => {
    expect({ package: ours.package, syntax: ours.syntax }).toEqual({
      package: ref.package,
      syntax: ref.syntax,
    });
    expect(ours.package).toBe(PKG);
  });

  it(`declares the same services and ${EXPECTED_RPCS} RPCs`, () => {
    expect(compareServices(ref, ours)).toEqual([]);
    const count = (f: FileDescriptorProto) => f.service.reduce((n, s) => n + s.method.length, 0);
    expect(count(ref)).toBe(EXPECTED_RPCS);
    expect(count(ours)).toBe(EXPECTED_RPCS);
    expect(ours.service.map((s) => s.name).sort()).toEqual(["ImageService", "RuntimeService"]);
  });

  it("declares the same messages, fields, nested and map-entry types", () => {
    expect(compareMessages(ref, ours)).toEqual([]);
    const n = (f: FileDescriptorProto) => collectMessages(f.package, f.messageType).size;
    expect(n(ours)).toBe(n(ref));
    expect(ours.messageType.length).toBe(ref.messageType.length);
  });

  it("declares the same enums with the same value names and numbers", () => {
    expect(compareEnums(ref, ours)).toEqual([]);
    expect(collectEnums(ours).size).toBe(collectEnums(ref).size);
  });

  it("encodes every message so that both schemas decode it alike, and decodes the reference's encoding", async () => {
    const messages = collectMessages(ref.package, ref.messageType);
    const enums = collectEnums(ref);
    // Every message type a field can name (map entries cannot be field types themselves).
    const names = [...messages].filter(([, d]) => !d.options?.mapEntry).map(([n]) => n);
    const sampler = new Sampler(messages, enums);
    const samples = names.map((full) => ({ full, value: sampler.message(full) }));
    expect(sampler.problems).toEqual([]);

    // One wrapper message carries every sample, so protoc runs once per schema and direction.
    const label = (full: string) => full.slice(PKG.length + 1).replaceAll(".", "_");
    const wrapDir = join(tmp, "wrap");
    await Deno.mkdir(wrapDir, { recursive: true });
    await Deno.writeTextFile(
      join(wrapDir, "wirecheck.proto"),
      [
        'syntax = "proto3";',
        "package wirecheck;",
        `import "${SCHEMA}";`,
        "message Batch {",
        ...names.map((full, i) => `  ${full} m_${label(full)} = ${i + 1};`),
        "}",
        "",
      ].join("\n"),
    );

    const writer = new BinaryWriter();
    const expected = new Map<number, { full: string; msg: unknown }>();
    samples.forEach(({ full, value }, i) => {
      const codec = codecFor(full)!;
      const msg = codec.fromPartial(value);
      expected.set(i + 1, { full, msg });
      writer.uint32(((i + 1) << 3) | 2).bytes(codec.encode(msg).finish());
    });
    const ourBytes = writer.finish();

    const decodeWith = (root: string) =>
      protoc(
        [`-I${wrapDir}`, `-I${root}`, "--decode=wirecheck.Batch", "wirecheck.proto"],
        ourBytes,
      );
    const [viaRef, viaOurs] = await Promise.all([decodeWith(refRoot), decodeWith(OURS_ROOT)]);
    const refText = new TextDecoder().decode(viaRef.stdout);
    const oursText = new TextDecoder().decode(viaOurs.stdout);

    const refSections = sections(refText), ourSections = sections(oursText);
    const problems: string[] = [];
    for (const [i, { full }] of samples.entries()) {
      const key = label(full);
      const r = refSections.get(key), o = ourSections.get(key);
      const setFields = messages.get(full)!.field;
      if (r === undefined) {
        problems.push(`${full}: missing from the reference decode (batch field ${i + 1})`);
        continue;
      }
      if (r !== o) problems.push(`${full}: decodes differently: ${firstDifference(r, o ?? "")}`);
      const unknown = r.split("\n").filter((l) => UNKNOWN_FIELD.test(l));
      if (unknown.length) {
        problems.push(
          `${full}: unknown fields when decoded with the reference: ${unknown.join(" | ")}`,
        );
      }
      // Every field we populated must come out under its reference name.
      for (const f of setFields) {
        if (!new RegExp(`^  ${f.name}( \\{|: )`, "m").test(r)) {
          problems.push(`${full}.${f.name}: not present in the reference decode`);
        }
      }
    }
    expect(problems).toEqual([]);
    expect(refText).toBe(oursText);

    // Reverse direction: protoc encodes the same text with the reference schema, our generated
    // code decodes it and must get the original values back.
    const encoded = await protoc(
      [`-I${wrapDir}`, `-I${refRoot}`, "--encode=wirecheck.Batch", "wirecheck.proto"],
      viaRef.stdout,
    );
    const reader = new BinaryReader(encoded.stdout);
    const seen = new Set<number>();
    while (reader.pos < reader.len) {
      const [num] = reader.tag();
      const bytes = reader.bytes();
      const want = expected.get(num);
      if (!want) throw new Error(`unexpected batch field ${num}`);
      seen.add(num);
      const got = codecFor(want.full)!.decode(bytes);
      try {
        expect(got).toEqual(want.msg);
      } catch (e) {
        throw new Error(`${want.full}: decoding the reference encoding differs: ${e}`);
      }
    }
    expect(seen.size).toBe(samples.length);
  });

  it("checks itself: a changed field number in a copy of ours is reported", async () => {
    const root = join(tmp, "tampered");
    await Deno.mkdir(join(root, "runtime", "v1"), { recursive: true });
    const text = await Deno.readTextFile(join(OURS_ROOT, SCHEMA));
    const changed = text.replace(/(LinuxContainerConfig linux = )15;/, "$199;");
    expect(changed).not.toBe(text);
    await Deno.writeTextFile(join(root, SCHEMA), changed);
    expect(compareMessages(ref, await descriptor(root))).toEqual([
      "runtime.v1.ContainerConfig.field 15 (linux): missing from ours",
      "runtime.v1.ContainerConfig.field 99 (linux): not in the reference",
    ]);
  });
});
