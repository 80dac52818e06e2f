/**
 * Regenerates src/gen/ from proto/ with protoc (Debian protobuf-compiler) and ts-proto
 * (pinned in package.json). `--check` regenerates into a temp dir and fails when the committed
 * code differs, which CI runs so generated code never goes stale.
 *
 * @example
 * ```sh
 * deno task gen           # rewrite src/gen
 * deno task gen --check   # CI: fail if src/gen is stale
 * ```
 */
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const protoDir = join(root, "proto");
const outDir = join(root, "src", "gen");
const plugin = join(root, "node_modules", "ts-proto", "protoc-gen-ts_proto");
const options = [
  // Plain service descriptions (no @grpc/grpc-js import): the native edge and client need none;
  // src/grpc/grpc_js.ts adapts them where grpc-js is still used.
  "outputServices=generic-definitions",
  "env=node",
  "forceLong=bigint",
  "esModuleInterop=true",
  "importSuffix=.ts",
  "useOptionals=none",
  "oneof=unions-value",
  "useDate=false",
  // JSON helpers are unused (gRPC is binary) and would double the size of the CRI code.
  "outputJsonMethods=false",
].join(",");

function protoFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of Deno.readDirSync(dir)) {
    const p = join(dir, e.name);
    if (e.isDirectory) out.push(...protoFiles(p));
    else if (e.name.endsWith(".proto")) out.push(relative(protoDir, p));
  }
  return out.sort();
}

function listTree(dir: string, base = dir): Map<string, string> {
  const out = new Map<string, string>();
  try {
    for (const e of Deno.readDirSync(dir)) {
      const p = join(dir, e.name);
      if (e.isDirectory) { for (const [k, v] of listTree(p, base)) out.set(k, v); }
      else out.set(relative(base, p), Deno.readTextFileSync(p));
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return out;
}

async function generate(into: string): Promise<void> {
  try {
    await Deno.stat(plugin);
  } catch {
    throw new Error(
      `ts-proto plugin missing at ${plugin}: run scripts/setup.sh (it runs npm install)`,
    );
  }
  await Deno.mkdir(into, { recursive: true });
  const files = protoFiles(protoDir);
  const cmd = new Deno.Command("protoc", {
    args: [
      `--plugin=protoc-gen-ts_proto=${plugin}`,
      `--ts_proto_out=${into}`,
      `--ts_proto_opt=${options}`,
      `-I${protoDir}`,
      ...files,
    ],
    cwd: root,
  });
  const res = await cmd.output();
  if (!res.success) {
    throw new Error(
      `protoc failed on ${files.join(" ")}:\n${new TextDecoder().decode(res.stderr)}`,
    );
  }
}

if (import.meta.main) {
  const check = Deno.args.includes("--check");
  if (!check) {
    await Deno.remove(outDir, { recursive: true }).catch(() => {});
    await generate(outDir);
    console.log(`generated ${listTree(outDir).size} files into ${relative(root, outDir)}`);
  } else {
    const tmp = await Deno.makeTempDir({ prefix: "k8scontainerd-gen-" });
    try {
      await generate(tmp);
      const want = listTree(tmp);
      const have = listTree(outDir);
      const stale = [...new Set([...want.keys(), ...have.keys()])]
        .filter((k) => want.get(k) !== have.get(k)).sort();
      if (stale.length) {
        console.error(`src/gen is stale (run 'deno task gen'): ${stale.join(", ")}`);
        Deno.exit(1);
      }
      console.log(`src/gen is fresh (${want.size} files)`);
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  }
}
