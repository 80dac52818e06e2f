/** Management API: Images service (k8scontainerd.services.images.v1) over the ImageService. */
import type { CallContext } from "../grpc/server.ts";
import { namespaceOf } from "./namespace.ts";
import {
  fromWireDescriptor,
  optionalPlatform,
  required,
  toNanos,
  toWireDescriptor,
} from "./convert.ts";
import type { ImageService, ImageView } from "../services/images/service.ts";
import type * as pb from "../gen/k8scontainerd/services/images/v1/images.ts";
import type { PullStatus } from "../services/images/pull.ts";

export function toWireImage(i: ImageView): pb.Image {
  return {
    name: i.name,
    labels: i.labels,
    target: toWireDescriptor(i.target),
    createdAt: toNanos(i.createdAt),
    updatedAt: toNanos(i.updatedAt),
    size: BigInt(i.size),
    unpacked: i.unpacked,
  };
}

function wireStatus(s: PullStatus): pb.PullStatus {
  return {
    state: s.state,
    ref: s.ref,
    mediaType: s.mediaType,
    offset: BigInt(s.offset),
    total: BigInt(s.total),
  };
}

/** Chunks for streamed blobs and tarballs: large enough to be cheap, small for flow control. */
const CHUNK = 1 << 20;

export function imagesApi(images: ImageService) {
  return {
    async get(req: pb.GetImageRequest, ctx: CallContext): Promise<pb.GetImageResponse> {
      return {
        image: toWireImage(await images.get(namespaceOf(ctx.metadata), required(req.name, "name"))),
      };
    },
    async list(req: pb.ListImagesRequest, ctx: CallContext): Promise<pb.ListImagesResponse> {
      return {
        images: (await images.list(namespaceOf(ctx.metadata), req.filters)).map(toWireImage),
      };
    },
    async create(req: pb.CreateImageRequest, ctx: CallContext): Promise<pb.CreateImageResponse> {
      const i = req.image;
      const img = await images.create(namespaceOf(ctx.metadata), {
        name: required(i?.name ?? "", "image.name"),
        target: fromWireDescriptor(i?.target, "image"),
        labels: i?.labels ?? {},
      });
      return { image: toWireImage(img) };
    },
    async update(req: pb.UpdateImageRequest, ctx: CallContext): Promise<pb.UpdateImageResponse> {
      const i = req.image;
      const name = required(i?.name ?? "", "image.name");
      const mask = req.updateMask.length ? req.updateMask : ["labels", "target"];
      const img = await images.update(namespaceOf(ctx.metadata), name, {
        target: mask.includes("target")
          ? fromWireDescriptor(i?.target, `image ${name}`)
          : undefined,
        labels: mask.includes("labels") ? i?.labels ?? {} : undefined,
      });
      return { image: toWireImage(img) };
    },
    async delete(req: pb.DeleteImageRequest, ctx: CallContext): Promise<pb.DeleteImageResponse> {
      await images.delete(namespaceOf(ctx.metadata), required(req.name, "name"), {
        sync: req.sync,
      });
      return {};
    },
    async check(req: pb.CheckImageRequest, ctx: CallContext): Promise<pb.CheckImageResponse> {
      const r = await images.check(namespaceOf(ctx.metadata), required(req.name, "name"));
      return { ...r, presentSize: BigInt(r.presentSize), totalSize: BigInt(r.totalSize) };
    },
    async *pull(req: pb.PullRequest, ctx: CallContext): AsyncGenerator<pb.PullProgress> {
      const ns = namespaceOf(ctx.metadata);
      // Progress arrives by callback; the stream drains it between awaits.
      const queue: pb.PullStatus[][] = [];
      let wake: (() => void) | undefined;
      const credentials = req.identityToken
        ? { identityToken: req.identityToken }
        : req.username
        ? { username: req.username, password: req.password }
        : undefined;
      let result: ImageView | undefined;
      let failure: unknown;
      let finished = false;
      images.pull(ns, required(req.reference, "reference"), {
        platform: optionalPlatform(req.platform),
        allPlatforms: req.allPlatforms,
        unpack: !req.noUnpack,
        snapshotter: req.snapshotter || undefined,
        credentials,
        plainHttpHosts: req.plainHttpHosts,
        signal: ctx.signal,
        onProgress: (s) => {
          queue.push(s.map(wireStatus));
          wake?.();
        },
      }).then((r) => (result = r), (e) => (failure = e)).finally(() => {
        finished = true;
        wake?.();
      });
      for (;;) {
        while (queue.length) yield { statuses: queue.shift()!, done: false, image: undefined };
        if (finished) break;
        await new Promise<void>((r) => (wake = r));
        wake = undefined;
      }
      while (queue.length) yield { statuses: queue.shift()!, done: false, image: undefined };
      if (failure) throw failure;
      yield { statuses: [], done: true, image: toWireImage(result!) };
    },
    async import(
      reqs: AsyncIterable<pb.ImportChunk>,
      ctx: CallContext,
    ): Promise<pb.ImportResponse> {
      const it = reqs[Symbol.asyncIterator]();
      const first = await it.next();
      const head = first.done ? undefined : first.value;
      const stream = new ReadableStream<Uint8Array>({
        start(c) {
          if (head?.data.length) c.enqueue(new Uint8Array(head.data));
        },
        async pull(c) {
          const n = await it.next();
          if (n.done) c.close();
          else if (n.value.data.length) c.enqueue(new Uint8Array(n.value.data));
        },
      });
      const out = await images.import(namespaceOf(ctx.metadata), stream, {
        baseName: head?.baseName || undefined,
        unpack: !head?.noUnpack,
        platform: optionalPlatform(head?.platform ?? ""),
      });
      return { images: out.map(toWireImage) };
    },
    async *export(req: pb.ExportRequest, ctx: CallContext): AsyncGenerator<pb.ExportChunk> {
      const stream = images.export(namespaceOf(ctx.metadata), req.names, {
        platform: optionalPlatform(req.platform),
        all: req.allPlatforms,
      });
      yield* chunked(stream, ctx.signal);
    },
  };
}

/** Re-chunks a byte stream into messages of at most CHUNK bytes. */
export async function* chunked(
  stream: ReadableStream<Uint8Array>,
  signal: AbortSignal,
): AsyncGenerator<{ data: Buffer }> {
  const reader = stream.getReader();
  try {
    for (;;) {
      if (signal.aborted) return;
      const { done, value } = await reader.read();
      if (done) return;
      for (let off = 0; off < value.length; off += CHUNK) {
        yield { data: Buffer.from(value.subarray(off, off + CHUNK)) };
      }
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
}
