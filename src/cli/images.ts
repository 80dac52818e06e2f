/**
 * `k8scontainerd images …`: pull, ls, rm, tag, import, export, check — all done by the
 * daemon; the CLI shows progress and results.
 */
import { parseArgs } from "node:util";
import type { DaemonClient } from "./client.ts";
import { UsageError } from "./usage_error.ts";
import { formatAge, formatBytes, formatLabels, printList } from "./output.ts";
import { PullProgressView } from "./progress.ts";
import type { Image, ImportChunk } from "../gen/k8scontainerd/services/images/v1/images.ts";

export const IMAGES_USAGE = `Usage: k8scontainerd [-n NS] images COMMAND

  pull [--platform OS/ARCH[/VARIANT]] [--all-platforms] [--no-unpack] [--snapshotter NAME]
       [--user USER[:PASSWORD]] [--plain-http HOST]… REF
                             download and unpack an image (a progress bar on terminals)
  ls [--quiet] [--format table|json] [FILTER…]
                             list images (filters: name==x, name~=re, labels.k==v, target.digest==…)
  rm [--sync] REF…           remove image names (content goes at garbage collection; --sync: now)
  tag [--force] SOURCE TARGET…
                             give an image more names
  import [--base-name NAME] [--no-unpack] FILE|-
                             import an OCI layout or docker save tarball
  export [--platform P] [--all-platforms] FILE|- REF…
                             write images as an OCI layout tarball
  check [--quiet] [REF…]     report whether all of an image's content is present
`;

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

export async function imagesCommand(args: string[], c: DaemonClient): Promise<number> {
  const [sub, ...rest] = args;
  switch (sub) {
    case "pull":
      return await pull(rest, c);
    case "ls":
    case "list": {
      const { values, positionals } = parseArgs({
        args: rest,
        allowPositionals: true,
        options: { quiet: { type: "boolean", short: "q" }, format: { type: "string" } },
      });
      const { images } = await c.unary(c.images.list.bind(c.images), { filters: positionals });
      printList(images, {
        quiet: values.quiet,
        format: values.format,
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
    case "rm":
    case "remove": {
      const { values, positionals } = parseArgs({
        args: rest,
        allowPositionals: true,
        options: { sync: { type: "boolean" } },
      });
      if (!positionals.length) throw new UsageError("images rm needs at least one REF");
      let failed = 0;
      for (const name of positionals) {
        try {
          await c.unary(c.images.delete.bind(c.images), { name, sync: !!values.sync });
          console.log(name);
        } catch (e) {
          console.error(`k8scontainerd: ${(e as Error).message}`);
          failed++;
        }
      }
      return failed ? 1 : 0;
    }
    case "tag": {
      const { values, positionals } = parseArgs({
        args: rest,
        allowPositionals: true,
        options: { force: { type: "boolean" } },
      });
      const [source, ...targets] = positionals;
      if (!source || !targets.length) {
        throw new UsageError("usage: images tag [--force] SOURCE TARGET…");
      }
      const { image } = await c.unary(c.images.get.bind(c.images), { name: source });
      for (const name of targets) {
        const img = { ...image!, name, labels: image!.labels };
        try {
          await c.unary(c.images.create.bind(c.images), { image: img });
        } catch (e) {
          if (!values.force || !/already exists/.test((e as Error).message)) throw e;
          await c.unary(c.images.update.bind(c.images), { image: img, updateMask: ["target"] });
        }
        console.log(name);
      }
      return 0;
    }
    case "import":
      return await importImages(rest, c);
    case "export":
      return await exportImages(rest, c);
    case "check": {
      const { values, positionals } = parseArgs({
        args: rest,
        allowPositionals: true,
        options: { quiet: { type: "boolean", short: "q" }, format: { type: "string" } },
      });
      const names = positionals.length
        ? positionals
        : (await c.unary(c.images.list.bind(c.images), { filters: [] })).images.map((i) => i.name);
      const rows = [];
      for (const name of names) {
        rows.push({ name, ...(await c.unary(c.images.check.bind(c.images), { name })) });
      }
      printList(rows, {
        quiet: values.quiet,
        format: values.format,
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
    case undefined:
    case "help":
      console.log(IMAGES_USAGE);
      return 0;
    default:
      throw new UsageError(`unknown images command "${sub}"\n\n${IMAGES_USAGE}`);
  }
}

async function pull(args: string[], c: DaemonClient): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      platform: { type: "string" },
      "all-platforms": { type: "boolean" },
      "no-unpack": { type: "boolean" },
      snapshotter: { type: "string" },
      user: { type: "string", short: "u" },
      "plain-http": { type: "string", multiple: true },
      quiet: { type: "boolean", short: "q" },
    },
  });
  if (positionals.length !== 1) throw new UsageError("usage: images pull [flags] REF");
  const [user, ...pass] = (values.user ?? "").split(":");
  const view = values.quiet ? undefined : new PullProgressView(Deno.stdout.isTerminal());
  const started = performance.now();
  let image: Image | undefined;
  for await (
    const p of c.stream(c.images.pull.bind(c.images), {
      reference: positionals[0],
      platform: values.platform ?? "",
      allPlatforms: !!values["all-platforms"],
      noUnpack: !!values["no-unpack"],
      snapshotter: values.snapshotter ?? "",
      username: user,
      password: pass.join(":"),
      identityToken: "",
      plainHttpHosts: values["plain-http"] ?? [],
    })
  ) {
    view?.update(
      p.statuses.map((s) => ({ ...s, offset: Number(s.offset), total: Number(s.total) })),
    );
    if (p.done) image = p.image;
  }
  const secs = ((performance.now() - started) / 1000).toFixed(1);
  if (!image) throw new Error(`pull of ${positionals[0]} ended without a result`);
  if (values.quiet) console.log(image.name);
  else {view?.finish(
      `${image.name}: ${image.target?.digest} (${formatBytes(image.size)}) pulled in ${secs} s`,
    );}
  return 0;
}

async function importImages(args: string[], c: DaemonClient): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      "base-name": { type: "string" },
      "no-unpack": { type: "boolean" },
      platform: { type: "string" },
    },
  });
  if (positionals.length !== 1) throw new UsageError("usage: images import [flags] FILE|-");
  const file = positionals[0] === "-" ? Deno.stdin : await Deno.open(positionals[0]);
  const images = await new Promise<Image[]>((resolve, reject) => {
    const stream = c.images.import(
      c.metadata(),
      (e, r) => (e ? reject(c.explain(e)) : resolve(r.images)),
    );
    (async () => {
      let first = true;
      for await (const data of file.readable) {
        const chunk: ImportChunk = {
          data: Buffer.from(data),
          baseName: first ? values["base-name"] ?? "" : "",
          noUnpack: !!values["no-unpack"],
          platform: values.platform ?? "",
        };
        first = false;
        if (!stream.write(chunk)) await new Promise((r) => stream.once("drain", r));
      }
      stream.end();
    })().catch((e) => {
      stream.cancel();
      reject(e);
    });
  });
  for (const i of images) console.log(`${i.name}\t${i.target?.digest}`);
  return 0;
}

async function exportImages(args: string[], c: DaemonClient): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { platform: { type: "string" }, "all-platforms": { type: "boolean" } },
  });
  const [out, ...names] = positionals;
  if (!out || !names.length) throw new UsageError("usage: images export [flags] FILE|- REF…");
  const file = out === "-"
    ? Deno.stdout
    : await Deno.open(out, { write: true, create: true, truncate: true });
  try {
    for await (
      const chunk of c.stream(c.images.export.bind(c.images), {
        names,
        platform: values.platform ?? "",
        allPlatforms: !!values["all-platforms"],
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
