/**
 * `k8scontainerd content|snapshots|namespaces|leases …`: the low-level stores, for debugging
 * what images and containers are made of.
 */
import { parseArgs } from "node:util";
import type { DaemonClient } from "./client.ts";
import { formatAge, formatBytes, formatLabels, parseLabels, printList } from "./output.ts";
import { UsageError } from "./usage_error.ts";
import { Kind } from "../gen/k8scontainerd/services/snapshots/v1/snapshots.ts";

const LIST_OPTIONS = {
  quiet: { type: "boolean", short: "q" },
  format: { type: "string" },
} as const;

export const STORES_USAGE = `Usage: k8scontainerd [-n NS] COMMAND

  content ls [--quiet] [--format F] [FILTER…]    blobs this namespace holds
  content get DIGEST                             write a blob to stdout
  content rm DIGEST…                             drop blobs from this namespace
  snapshots [--snapshotter S] ls [--quiet] [--format F]
  snapshots [--snapshotter S] mounts TARGET KEY  print the mount command for a snapshot
  snapshots [--snapshotter S] rm KEY…
  namespaces ls [--quiet] [--format F] | create NAME [--label K=V]… | rm NAME…
  leases ls [--quiet] [--format F] | rm [--sync] ID…
`;

export async function contentCommand(args: string[], c: DaemonClient): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === "ls" || sub === "list") {
    const { values, positionals } = parseArgs({
      args: rest,
      allowPositionals: true,
      options: LIST_OPTIONS,
    });
    const { info } = await c.unary(c.content.list.bind(c.content), { filters: positionals });
    printList(info, {
      quiet: values.quiet,
      format: values.format,
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
  if (sub === "get") {
    if (rest.length !== 1) throw new UsageError("usage: content get DIGEST");
    for await (
      const chunk of c.stream(c.content.read.bind(c.content), {
        digest: rest[0],
        offset: 0n,
        size: 0n,
      })
    ) {
      let off = 0;
      while (off < chunk.data.length) off += await Deno.stdout.write(chunk.data.subarray(off));
    }
    return 0;
  }
  if (sub === "rm" || sub === "delete") {
    if (!rest.length) throw new UsageError("usage: content rm DIGEST…");
    for (const digest of rest) {
      await c.unary(c.content.delete.bind(c.content), { digest });
      console.log(digest);
    }
    return 0;
  }
  throw new UsageError(STORES_USAGE);
}

const KIND_NAMES: Record<number, string> = {
  [Kind.VIEW]: "View",
  [Kind.ACTIVE]: "Active",
  [Kind.COMMITTED]: "Committed",
};

export async function snapshotsCommand(args: string[], c: DaemonClient): Promise<number> {
  let snapshotter = "overlayfs";
  if (args[0] === "--snapshotter") {
    snapshotter = args[1] ?? "";
    args = args.slice(2);
  } else if (args[0]?.startsWith("--snapshotter=")) {
    snapshotter = args[0].slice("--snapshotter=".length);
    args = args.slice(1);
  }
  const [sub, ...rest] = args;
  if (sub === "ls" || sub === "list") {
    const { values } = parseArgs({ args: rest, options: LIST_OPTIONS });
    const { info } = await c.unary(c.snapshots.list.bind(c.snapshots), {
      snapshotter,
      filters: [],
    });
    printList(info, {
      quiet: values.quiet,
      format: values.format,
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
  if (sub === "mounts") {
    if (rest.length !== 2) throw new UsageError("usage: snapshots mounts TARGET KEY");
    const [target, key] = rest;
    const { mounts } = await c.unary(c.snapshots.mounts.bind(c.snapshots), { snapshotter, key });
    for (const m of mounts) {
      console.log(
        `mount -t ${m.type} ${m.source} ${target}${
          m.options.length ? ` -o ${m.options.join(",")}` : ""
        }`,
      );
    }
    return 0;
  }
  if (sub === "rm" || sub === "remove") {
    if (!rest.length) throw new UsageError("usage: snapshots rm KEY…");
    for (const key of rest) {
      await c.unary(c.snapshots.remove.bind(c.snapshots), { snapshotter, key });
      console.log(key);
    }
    return 0;
  }
  throw new UsageError(STORES_USAGE);
}

export async function namespacesCommand(args: string[], c: DaemonClient): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === "ls" || sub === "list") {
    const { values } = parseArgs({ args: rest, options: LIST_OPTIONS });
    const { namespaces } = await c.unary(c.namespaces.list.bind(c.namespaces), { filter: "" });
    printList(namespaces, {
      quiet: values.quiet,
      format: values.format,
      id: (n) => n.name,
      columns: [["NAME", (n) => n.name], ["LABELS", (n) => formatLabels(n.labels)]],
    });
    return 0;
  }
  if (sub === "create") {
    const { values, positionals } = parseArgs({
      args: rest,
      allowPositionals: true,
      options: { label: { type: "string", multiple: true } },
    });
    if (positionals.length !== 1) {
      throw new UsageError("usage: namespaces create NAME [--label K=V]…");
    }
    await c.unary(c.namespaces.create.bind(c.namespaces), {
      namespace: { name: positionals[0], labels: parseLabels(values.label) },
    });
    console.log(positionals[0]);
    return 0;
  }
  if (sub === "rm" || sub === "remove") {
    if (!rest.length) throw new UsageError("usage: namespaces rm NAME…");
    for (const name of rest) {
      await c.unary(c.namespaces.delete.bind(c.namespaces), { name });
      console.log(name);
    }
    return 0;
  }
  throw new UsageError(STORES_USAGE);
}

export async function leasesCommand(args: string[], c: DaemonClient): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === "ls" || sub === "list") {
    const { values } = parseArgs({ args: rest, options: LIST_OPTIONS });
    const { leases } = await c.unary(c.leases.list.bind(c.leases), { filters: [] });
    printList(leases, {
      quiet: values.quiet,
      format: values.format,
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
  if (sub === "rm" || sub === "remove") {
    const { values, positionals } = parseArgs({
      args: rest,
      allowPositionals: true,
      options: { sync: { type: "boolean" } },
    });
    if (!positionals.length) throw new UsageError("usage: leases rm [--sync] ID…");
    for (const id of positionals) {
      await c.unary(c.leases.delete.bind(c.leases), { id, sync: !!values.sync });
      console.log(id);
    }
    return 0;
  }
  throw new UsageError(STORES_USAGE);
}
