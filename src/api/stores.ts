/**
 * Management API: Namespaces, Content, Snapshots and Leases — thin services over the stores,
 * as containerd exposes its stores. Removals that free space trigger garbage collection
 * through the images service, which owns it.
 */
import type { CallContext } from "../grpc/server.ts";
import { namespaceOf } from "./namespace.ts";
import { required, toNanos } from "./convert.ts";
import { InvalidArgumentError, NotFoundError } from "../errdefs/errors.ts";
import type { ContentStore } from "../content/store.ts";
import type { ContentIndex } from "../metadata/content.ts";
import type { LeaseStore } from "../metadata/leases.ts";
import type { NamespaceStore } from "../metadata/namespaces.ts";
import type { SnapshotInfo, Snapshotter } from "../snapshots/snapshotter.ts";
import type { ImageService } from "../services/images/service.ts";
import type * as ns from "../gen/k8scontainerd/services/namespaces/v1/namespace.ts";
import type * as ct from "../gen/k8scontainerd/services/content/v1/content.ts";
import * as sn from "../gen/k8scontainerd/services/snapshots/v1/snapshots.ts";
import type * as ls from "../gen/k8scontainerd/services/leases/v1/leases.ts";
import { chunked } from "./images.ts";

export function namespacesApi(namespaces: NamespaceStore) {
  return {
    get: (req: ns.GetNamespaceRequest): Promise<ns.GetNamespaceResponse> =>
      Promise.resolve({ namespace: namespaces.get(required(req.name, "name")) }),
    list: (): Promise<ns.ListNamespacesResponse> =>
      Promise.resolve({
        namespaces: namespaces.list().map((n) => ({ name: n.name, labels: n.labels })),
      }),
    create: (req: ns.CreateNamespaceRequest): Promise<ns.CreateNamespaceResponse> => {
      const n = namespaces.create(
        required(req.namespace?.name ?? "", "namespace.name"),
        req.namespace?.labels ?? {},
      );
      return Promise.resolve({ namespace: { name: n.name, labels: n.labels } });
    },
    update: (req: ns.UpdateNamespaceRequest): Promise<ns.UpdateNamespaceResponse> => {
      const n = namespaces.setLabels(
        required(req.namespace?.name ?? "", "namespace.name"),
        req.namespace?.labels ?? {},
      );
      return Promise.resolve({ namespace: { name: n.name, labels: n.labels } });
    },
    delete: (req: ns.DeleteNamespaceRequest): Promise<ns.DeleteNamespaceResponse> => {
      namespaces.delete(required(req.name, "name"));
      return Promise.resolve({});
    },
  };
}

export function contentApi(content: ContentStore, index: ContentIndex, images: ImageService) {
  const info = (
    r: {
      digest: string;
      size: number;
      labels: Record<string, string>;
      createdAt: Date;
      updatedAt: Date;
    },
  ): ct.Info => ({
    digest: r.digest,
    size: BigInt(r.size),
    labels: r.labels,
    createdAt: toNanos(r.createdAt),
    updatedAt: toNanos(r.updatedAt),
  });
  return {
    info: (req: ct.InfoRequest, ctx: CallContext): Promise<ct.InfoResponse> =>
      Promise.resolve({
        info: info(index.get(namespaceOf(ctx.metadata), required(req.digest, "digest"))),
      }),
    update: (req: ct.UpdateRequest, ctx: CallContext): Promise<ct.UpdateResponse> =>
      Promise.resolve({
        info: info(
          index.setLabels(
            namespaceOf(ctx.metadata),
            required(req.info?.digest ?? "", "info.digest"),
            req.info?.labels ?? {},
          ),
        ),
      }),
    list: (req: ct.ListContentRequest, ctx: CallContext): Promise<ct.ListContentResponse> =>
      Promise.resolve({ info: index.list(namespaceOf(ctx.metadata), req.filters).map(info) }),
    async delete(
      req: ct.DeleteContentRequest,
      ctx: CallContext,
    ): Promise<ct.DeleteContentResponse> {
      index.remove(namespaceOf(ctx.metadata), required(req.digest, "digest"));
      await images.gc();
      return {};
    },
    async *read(
      req: ct.ReadContentRequest,
      ctx: CallContext,
    ): AsyncGenerator<ct.ReadContentResponse> {
      // Only content this namespace holds is readable through it.
      index.get(namespaceOf(ctx.metadata), required(req.digest, "digest"));
      let offset = req.offset;
      const stream = content.read(req.digest, {
        offset: Number(req.offset),
        length: req.size ? Number(req.size) : undefined,
      });
      for await (const { data } of chunked(stream, ctx.signal)) {
        yield { offset, data };
        offset += BigInt(data.length);
      }
    },
    async listStatuses(): Promise<ct.ListStatusesResponse> {
      const statuses = await content.listStatuses();
      return {
        statuses: statuses.map((s) => ({
          ref: s.ref,
          offset: BigInt(s.offset),
          total: BigInt(s.total),
          expected: s.expected ?? "",
          startedAt: toNanos(s.startedAt),
          updatedAt: toNanos(s.updatedAt),
        })),
      };
    },
    async abort(req: ct.AbortRequest): Promise<ct.AbortResponse> {
      await content.abort(required(req.ref, "ref"));
      return {};
    },
  };
}

const KINDS = { view: sn.Kind.VIEW, active: sn.Kind.ACTIVE, committed: sn.Kind.COMMITTED } as const;

function snapInfo(i: SnapshotInfo): sn.Info {
  return {
    name: i.key,
    parent: i.parent ?? "",
    kind: KINDS[i.kind],
    createdAt: toNanos(i.created),
    updatedAt: toNanos(i.updated),
    labels: i.labels,
  };
}

export function snapshotsApi(snapshotters: Map<string, Snapshotter>, defaultName: string) {
  const get = (name: string): Snapshotter => {
    const s = snapshotters.get(name || defaultName);
    if (!s) {
      throw new NotFoundError(
        `snapshotter "${name}" (have: ${[...snapshotters.keys()].join(", ")})`,
      );
    }
    return s;
  };
  const wireMounts = (ms: { type: string; source: string; target?: string; options: string[] }[]) =>
    ms.map((m) => ({ type: m.type, source: m.source, target: m.target ?? "", options: m.options }));
  return {
    async prepare(
      req: sn.PrepareSnapshotRequest,
      ctx: CallContext,
    ): Promise<sn.PrepareSnapshotResponse> {
      const m = await get(req.snapshotter).prepare(
        namespaceOf(ctx.metadata),
        required(req.key, "key"),
        req.parent || undefined,
        req.labels,
      );
      return { mounts: wireMounts(m) };
    },
    async view(req: sn.ViewSnapshotRequest, ctx: CallContext): Promise<sn.ViewSnapshotResponse> {
      const m = await get(req.snapshotter).view(
        namespaceOf(ctx.metadata),
        required(req.key, "key"),
        req.parent || undefined,
        req.labels,
      );
      return { mounts: wireMounts(m) };
    },
    mounts: (req: sn.MountsRequest, ctx: CallContext): Promise<sn.MountsResponse> =>
      Promise.resolve({
        mounts: wireMounts(
          get(req.snapshotter).mounts(namespaceOf(ctx.metadata), required(req.key, "key")),
        ),
      }),
    async commit(
      req: sn.CommitSnapshotRequest,
      ctx: CallContext,
    ): Promise<sn.CommitSnapshotResponse> {
      await get(req.snapshotter).commit(
        namespaceOf(ctx.metadata),
        required(req.name, "name"),
        required(req.key, "key"),
        req.labels,
      );
      return {};
    },
    async remove(
      req: sn.RemoveSnapshotRequest,
      ctx: CallContext,
    ): Promise<sn.RemoveSnapshotResponse> {
      await get(req.snapshotter).remove(namespaceOf(ctx.metadata), required(req.key, "key"));
      return {};
    },
    stat: (req: sn.StatSnapshotRequest, ctx: CallContext): Promise<sn.StatSnapshotResponse> =>
      Promise.resolve({
        info: snapInfo(
          get(req.snapshotter).stat(namespaceOf(ctx.metadata), required(req.key, "key")),
        ),
      }),
    update: (req: sn.UpdateSnapshotRequest, ctx: CallContext): Promise<sn.UpdateSnapshotResponse> =>
      Promise.resolve({
        info: snapInfo(
          get(req.snapshotter).update(
            namespaceOf(ctx.metadata),
            required(req.info?.name ?? "", "info.name"),
            req.info?.labels ?? {},
          ),
        ),
      }),
    list: (req: sn.ListSnapshotsRequest, ctx: CallContext): Promise<sn.ListSnapshotsResponse> => {
      if (req.filters.length) {
        throw new InvalidArgumentError("snapshot filters are not supported yet");
      }
      return Promise.resolve({
        info: get(req.snapshotter).walk(namespaceOf(ctx.metadata)).map(snapInfo),
      });
    },
    async usage(req: sn.UsageRequest, ctx: CallContext): Promise<sn.UsageResponse> {
      const u = await get(req.snapshotter).usage(
        namespaceOf(ctx.metadata),
        required(req.key, "key"),
      );
      return { size: BigInt(u.size), inodes: BigInt(u.inodes) };
    },
  };
}

export function leasesApi(leases: LeaseStore, images: ImageService) {
  return {
    create: (req: ls.CreateRequest, ctx: CallContext): Promise<ls.CreateResponse> => {
      const l = leases.create(namespaceOf(ctx.metadata), req.id || undefined, {
        labels: req.labels,
        expiresAt: req.expireSeconds > 0n
          ? new Date(Date.now() + Number(req.expireSeconds) * 1000)
          : undefined,
      });
      return Promise.resolve({
        lease: {
          id: l.id,
          labels: l.labels,
          createdAt: toNanos(l.createdAt),
          expiresAt: toNanos(l.expiresAt),
        },
      });
    },
    async delete(req: ls.DeleteRequest, ctx: CallContext): Promise<ls.DeleteResponse> {
      leases.delete(namespaceOf(ctx.metadata), required(req.id, "id"));
      const gc = images.gc();
      if (req.sync) await gc;
      else gc.catch(() => {});
      return {};
    },
    list: (_req: ls.ListRequest, ctx: CallContext): Promise<ls.ListResponse> =>
      Promise.resolve({
        leases: leases.list(namespaceOf(ctx.metadata)).map((l) => ({
          id: l.id,
          labels: l.labels,
          createdAt: toNanos(l.createdAt),
          expiresAt: toNanos(l.expiresAt),
        })),
      }),
    addResource: (
      req: ls.AddResourceRequest,
      ctx: CallContext,
    ): Promise<ls.AddResourceResponse> => {
      leases.addResource(namespaceOf(ctx.metadata), required(req.id, "id"), {
        type: required(req.resource?.type ?? "", "resource.type"),
        ref: required(req.resource?.id ?? "", "resource.id"),
      });
      return Promise.resolve({});
    },
    deleteResource: (
      req: ls.DeleteResourceRequest,
      ctx: CallContext,
    ): Promise<ls.DeleteResourceResponse> => {
      leases.removeResource(namespaceOf(ctx.metadata), required(req.id, "id"), {
        type: required(req.resource?.type ?? "", "resource.type"),
        ref: required(req.resource?.id ?? "", "resource.id"),
      });
      return Promise.resolve({});
    },
    listResources: (
      req: ls.ListResourcesRequest,
      ctx: CallContext,
    ): Promise<ls.ListResourcesResponse> =>
      Promise.resolve({
        resources: leases.resources(namespaceOf(ctx.metadata), required(req.id, "id")).map((r) => ({
          id: r.ref,
          type: r.type,
        })),
      }),
  };
}
