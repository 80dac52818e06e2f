/**
 * `k8scontainerd content|snapshots|namespaces|leases …`: the low-level stores, for debugging
 * what images and containers are made of.
 */
import type { Args, Context } from "./commands.ts";
import { formatAge, formatBytes, formatLabels, parseLabels, printList } from "./output.ts";

export async function contentList(a: Args, ctx: Context): Promise<number> {
  const c = await ctx.client();
  const { info } = await c.unary("content", "list", { filters: a.positionals });
  printList(info, {
    quiet: a.bool("quiet"),
    format: a.str("format"),
    id: (i) => i.digest,
    columns: [
      ["DIGEST", (i) => i.digest],
      ["SIZE", (i) => formatBytes(i.size)],
      ["AGE", (i) => formatAge(i.createdAt)],
      ["LABELS", (i) => formatLabels(i.labels)],
    ],
  });
  return 0;
}

export async function contentGet(a: Args, ctx: Context): Promise<number> {
  const c = await ctx.client();
  for await (
    const chunk of c.stream("content", "read", {
      digest: a.positionals[0],
      offset: 0n,
      size: 0n,
    })
  ) {
    let off = 0;
    while (off < chunk.data.length) off += await Deno.stdout.write(chunk.data.subarray(off));
  }
  return 0;
}

export async function contentRemove(a: Args, ctx: Context): Promise<number> {
  const c = await ctx.client();
  for (const digest of a.positionals) {
    await c.unary("content", "delete", { digest });
    console.log(digest);
  }
  return 0;
}

/** snapshots.proto's Kind values, spelled out so this module does not load the gRPC code. */
export const KIND_NAMES: Record<number, string> = { 1: "View", 2: "Active", 3: "Committed" };

const snapshotter = (a: Args) => a.str("snapshotter") ?? "overlayfs";

export async function snapshotsList(a: Args, ctx: Context): Promise<number> {
  const c = await ctx.client();
  const { info } = await c.unary("snapshots", "list", {
    snapshotter: snapshotter(a),
    filters: [],
  });
  printList(info, {
    quiet: a.bool("quiet"),
    format: a.str("format"),
    id: (i) => i.name,
    json: (i) => ({ ...i, kind: KIND_NAMES[i.kind] ?? "Unknown" }),
    columns: [
      ["KEY", (i) => i.name],
      ["PARENT", (i) => i.parent || "-"],
      ["KIND", (i) => KIND_NAMES[i.kind] ?? "Unknown"],
    ],
  });
  return 0;
}

export async function snapshotsMounts(a: Args, ctx: Context): Promise<number> {
  const [target, key] = a.positionals;
  const c = await ctx.client();
  const { mounts } = await c.unary("snapshots", "mounts", {
    snapshotter: snapshotter(a),
    key,
  });
  for (const m of mounts) {
    console.log(
      `mount -t ${m.type} ${m.source} ${target}${
        m.options.length ? ` -o ${m.options.join(",")}` : ""
      }`,
    );
  }
  return 0;
}

export async function snapshotsRemove(a: Args, ctx: Context): Promise<number> {
  const c = await ctx.client();
  for (const key of a.positionals) {
    await c.unary("snapshots", "remove", { snapshotter: snapshotter(a), key });
    console.log(key);
  }
  return 0;
}

export async function namespacesList(a: Args, ctx: Context): Promise<number> {
  const c = await ctx.client();
  const { namespaces } = await c.unary("namespaces", "list", { filter: "" });
  printList(namespaces, {
    quiet: a.bool("quiet"),
    format: a.str("format"),
    id: (n) => n.name,
    columns: [["NAME", (n) => n.name], ["LABELS", (n) => formatLabels(n.labels)]],
  });
  return 0;
}

export async function namespacesCreate(a: Args, ctx: Context): Promise<number> {
  const labels = parseLabels(a.list("label"));
  const c = await ctx.client();
  await c.unary("namespaces", "create", {
    namespace: { name: a.positionals[0], labels },
  });
  console.log(a.positionals[0]);
  return 0;
}

export async function namespacesRemove(a: Args, ctx: Context): Promise<number> {
  const c = await ctx.client();
  for (const name of a.positionals) {
    await c.unary("namespaces", "delete", { name });
    console.log(name);
  }
  return 0;
}

export async function leasesList(a: Args, ctx: Context): Promise<number> {
  const c = await ctx.client();
  const { leases } = await c.unary("leases", "list", { filters: [] });
  printList(leases, {
    quiet: a.bool("quiet"),
    format: a.str("format"),
    id: (l) => l.id,
    columns: [
      ["ID", (l) => l.id],
      ["CREATED", (l) => formatAge(l.createdAt)],
      [
        "EXPIRES",
        (l) => (l.expiresAt ? new Date(Number(l.expiresAt / 1_000_000n)).toISOString() : "-"),
      ],
      ["LABELS", (l) => formatLabels(l.labels)],
    ],
  });
  return 0;
}

export async function leasesRemove(a: Args, ctx: Context): Promise<number> {
  const c = await ctx.client();
  for (const id of a.positionals) {
    await c.unary("leases", "delete", { id, sync: !!a.bool("sync") });
    console.log(id);
  }
  return 0;
}
