/**
 * `k8scontainerd images …`: pull, ls, rm, tag, import, export, check — all done by the
 * daemon; the CLI shows progress and results.
 */
import type { Args, Context } from "./commands.ts";
import type { DaemonClient } from "./client.ts";
import { formatAge, formatBytes, formatLabels, printList } from "./output.ts";
import { PullProgressView } from "./progress.ts";
import type { Image, ImportChunk } from "../gen/k8scontainerd/services/images/v1/images.ts";

function imageJson(i: Image) {
  return {
    name: i.name,
    target: i.target,
    size: Number(i.size),
    unpacked: i.unpacked,
    labels: i.labels,
    createdAt: new Date(Number(i.createdAt / 1_000_000n)).toISOString(),
    updatedAt: new Date(Number(i.updatedAt / 1_000_000n)).toISOString(),
  };
}

export async function imagesList(a: Args, ctx: Context): Promise<number> {
  const c = await ctx.client();
  const { images } = await c.unary("images", "list", { filters: a.positionals });
  printList(images, {
    quiet: a.bool("quiet"),
    format: a.str("format"),
    id: (i) => i.name,
    json: imageJson,
    columns: [
      ["REF", (i) => i.name],
      ["TYPE", (i) => i.target?.mediaType ?? ""],
      ["DIGEST", (i) => i.target?.digest ?? ""],
      ["SIZE", (i) => formatBytes(i.size)],
      ["UNPACKED", (i) => (i.unpacked ? "yes" : "no")],
      ["CREATED", (i) => formatAge(i.createdAt)],
      ["LABELS", (i) => formatLabels(i.labels)],
    ],
  });
  return 0;
}

export async function imagesRemove(a: Args, ctx: Context): Promise<number> {
  const c = await ctx.client();
  let failed = 0;
  for (const name of a.positionals) {
    try {
      await c.unary("images", "delete", { name, sync: !!a.bool("sync") });
      console.log(name);
    } catch (e) {
      console.error(`k8scontainerd: ${(e as Error).message}`);
      failed++;
    }
  }
  return failed ? 1 : 0;
}

export async function imagesTag(a: Args, ctx: Context): Promise<number> {
  const [source, ...targets] = a.positionals;
  const c = await ctx.client();
  const { image } = await c.unary("images", "get", { name: source });
  for (const name of targets) {
    const img = { ...image!, name, labels: image!.labels };
    try {
      await c.unary("images", "create", { image: img });
    } catch (e) {
      if (!a.bool("force") || !/already exists/.test((e as Error).message)) throw e;
      await c.unary("images", "update", { image: img, updateMask: ["target"] });
    }
    console.log(name);
  }
  return 0;
}

export async function imagesCheck(a: Args, ctx: Context): Promise<number> {
  const c = await ctx.client();
  const names = a.positionals.length
    ? a.positionals
    : (await c.unary("images", "list", { filters: [] })).images.map((i) => i.name);
  const rows = [];
  for (const name of names) {
    rows.push({ name, ...(await c.unary("images", "check", { name })) });
  }
  printList(rows, {
    quiet: a.bool("quiet"),
    format: a.str("format"),
    id: (r) => `${r.name} ${r.complete ? "complete" : "incomplete"}`,
    columns: [
      ["REF", (r) => r.name],
      [
        "AVAILABLE",
        (r) => (r.complete ? "complete" : `incomplete (${r.missing.length} missing)`),
      ],
      ["SIZE", (r) => `${formatBytes(r.presentSize)}/${formatBytes(r.totalSize)}`],
      ["UNPACKED", (r) => (r.unpacked ? "true" : "false")],
    ],
  });
  return rows.every((r) => r.complete) ? 0 : 1;
}

/** What a pull needs besides the reference (the flags of `images pull`). */
export interface PullOptions {
  platform?: string;
  allPlatforms?: boolean;
  noUnpack?: boolean;
  snapshotter?: string;
  /** USER[:PASSWORD] */
  user?: string;
  plainHttp?: string[];
  quiet?: boolean;
  /** Where progress goes (default stdout; `run`'s auto-pull: stderr, beside the output). */
  out?: (s: string) => void;
  tty?: boolean;
}

/** Pulls through the daemon, showing per-layer progress; returns the image. */
export async function pullImage(c: DaemonClient, ref: string, o: PullOptions): Promise<Image> {
  const [user, ...pass] = (o.user ?? "").split(":");
  const view = o.quiet ? undefined : new PullProgressView(o.tty ?? Deno.stdout.isTerminal(), o.out);
  const started = performance.now();
  let image: Image | undefined;
  for await (
    const p of c.stream("images", "pull", {
      reference: ref,
      platform: o.platform ?? "",
      allPlatforms: !!o.allPlatforms,
      noUnpack: !!o.noUnpack,
      snapshotter: o.snapshotter ?? "",
      username: user,
      password: pass.join(":"),
      identityToken: "",
      plainHttpHosts: o.plainHttp ?? [],
    })
  ) {
    view?.update(
      p.statuses.map((s) => ({ ...s, offset: Number(s.offset), total: Number(s.total) })),
    );
    if (p.done) image = p.image;
  }
  const secs = ((performance.now() - started) / 1000).toFixed(1);
  if (!image) throw new Error(`pull of ${ref} ended without a result`);
  view?.finish(
    `${image.name}: ${image.target?.digest} (${formatBytes(image.size)}) pulled in ${secs} s`,
  );
  return image;
}

export async function imagesPull(a: Args, ctx: Context): Promise<number> {
  const c = await ctx.client();
  const image = await pullImage(c, a.positionals[0], {
    platform: a.str("platform"),
    allPlatforms: a.bool("all-platforms"),
    noUnpack: a.bool("no-unpack"),
    snapshotter: a.str("snapshotter"),
    user: a.str("user"),
    plainHttp: a.list("plain-http"),
    quiet: a.bool("quiet"),
  });
  if (a.bool("quiet")) console.log(image.name);
  return 0;
}

export async function imagesImport(a: Args, ctx: Context): Promise<number> {
  const positionals = a.positionals;
  const values = {
    "base-name": a.str("base-name"),
    "no-unpack": a.bool("no-unpack"),
    platform: a.str("platform"),
  };
  const c = await ctx.client();
  const file = positionals[0] === "-" ? Deno.stdin : await Deno.open(positionals[0]);
  async function* chunks(): AsyncGenerator<ImportChunk> {
    let first = true;
    for await (const data of file.readable) {
      yield {
        data: Buffer.from(data.buffer, data.byteOffset, data.byteLength),
        baseName: first ? values["base-name"] ?? "" : "",
        noUnpack: !!values["no-unpack"],
        platform: values.platform ?? "",
      };
      first = false;
    }
  }
  const { images } = await c.clientStream("images", "import", chunks());
  for (const i of images) console.log(`${i.name}\t${i.target?.digest}`);
  return 0;
}

export async function imagesExport(a: Args, ctx: Context): Promise<number> {
  const [out, ...names] = a.positionals;
  const c = await ctx.client();
  const file = out === "-"
    ? Deno.stdout
    : await Deno.open(out, { write: true, create: true, truncate: true });
  try {
    for await (
      const chunk of c.stream("images", "export", {
        names,
        platform: a.str("platform") ?? "",
        allPlatforms: !!a.bool("all-platforms"),
      })
    ) {
      let off = 0;
      while (off < chunk.data.length) off += await file.write(chunk.data.subarray(off));
    }
  } finally {
    if (file !== Deno.stdout) (file as Deno.FsFile).close();
  }
  return 0;
}
