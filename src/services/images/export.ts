/**
 * Exporting images as an OCI image layout tarball (oci-layout, index.json, blobs/<alg>/<hex>),
 * streamed: blobs are read from the content store as the tar is written, never held whole.
 * Each image's index.json entry carries its name (io.containerd.image.name) and tag
 * (org.opencontainers.image.ref.name), as containerd writes them, so `import` restores names.
 *
 * @example
 * ```ts
 * const tar = exportImages(content, [{ name: "docker.io/library/busybox:latest", target }], {});
 * await tar.pipeTo(file.writable);
 * ```
 */
import { pack } from "tar-stream";
import type { ContentStore } from "../../content/store.ts";
import { parseDigest } from "../../content/digest.ts";
import {
  type Descriptor,
  type Index,
  isIndex,
  isManifest,
  type Manifest,
  MEDIA_TYPES,
  type Platform,
} from "../../images/oci.ts";
import { parseReference } from "../../remotes/reference.ts";
import { readJson, selectManifests, validateIndex, validateManifest } from "./manifests.ts";

export const IMAGE_NAME_ANNOTATION = "io.containerd.image.name";
export const REF_NAME_ANNOTATION = "org.opencontainers.image.ref.name";
const FIXED_MTIME = new Date(0);

export interface ExportImage {
  name: string;
  target: Descriptor;
}

/** The blobs to write for one image: everything for the platform, or everything at all. */
async function collect(
  content: ContentStore,
  root: Descriptor,
  opts: { platform?: Platform; all?: boolean },
  out: Map<string, Descriptor>,
) {
  const visit = async (desc: Descriptor, depth: number) => {
    out.set(desc.digest, desc);
    if (depth > 4) return;
    if (isIndex(desc.mediaType)) {
      const index = validateIndex(await readJson<Index>(content, desc), desc);
      const chosen = opts.all
        ? index.manifests
        : selectManifests(index, { platform: opts.platform }, desc);
      for (const m of chosen) await visit(m, depth + 1);
    } else if (isManifest(desc.mediaType)) {
      const m = validateManifest(await readJson<Manifest>(content, desc), desc);
      for (const d of [m.config, ...m.layers]) out.set(d.digest, d);
    }
  };
  await visit(root, 0);
}

/** docker's short form of a name: docker.io/library/busybox:latest → busybox:latest. */
export function familiarName(repo: string): string {
  if (repo.startsWith("docker.io/library/")) return repo.slice("docker.io/library/".length);
  if (repo.startsWith("docker.io/")) return repo.slice("docker.io/".length);
  return repo;
}

/** One image of docker save's manifest.json. */
export interface DockerManifestEntry {
  Config: string;
  RepoTags: string[];
  Layers: string[];
}

const blobPath = (digest: string) => {
  const { algorithm, hex } = parseDigest(digest);
  return `blobs/${algorithm}/${hex}`;
};

/**
 * The single-platform manifest `docker load` reads for an image (the host's platform, or
 * the one asked for, out of an index); undefined when there is none.
 */
async function dockerEntry(
  content: ContentStore,
  img: ExportImage,
  opts: { platform?: Platform },
): Promise<DockerManifestEntry | undefined> {
  let desc = img.target;
  for (let depth = 0; isIndex(desc.mediaType) && depth < 4; depth++) {
    const index = validateIndex(await readJson<Index>(content, desc), desc);
    let chosen: Descriptor[];
    try {
      chosen = selectManifests(index, { platform: opts.platform }, desc);
    } catch {
      return undefined;
    }
    if (!chosen.length) return undefined;
    desc = chosen[0];
  }
  if (!isManifest(desc.mediaType)) return undefined;
  const m = validateManifest(await readJson<Manifest>(content, desc), desc);
  const ref = parseReference(img.name);
  return {
    Config: blobPath(m.config.digest),
    RepoTags: ref.tag ? [`${familiarName(ref.name)}:${ref.tag}`] : [],
    Layers: m.layers.map((l) => blobPath(l.digest)),
  };
}

/**
 * The tarball as a byte stream: an OCI layout, with docker save's manifest.json and
 * repositories beside it (as ctr writes them), so `docker load` reads it too. Missing
 * content fails the export naming the blob.
 */
export function exportImages(
  content: ContentStore,
  images: ExportImage[],
  opts: { platform?: Platform; all?: boolean },
): ReadableStream<Uint8Array> {
  const tar = pack();
  const entry = (name: string, body: Uint8Array) =>
    new Promise<void>((resolve, reject) =>
      tar.entry(
        { name, size: body.length, mode: 0o644, mtime: FIXED_MTIME },
        body,
        (e?: Error | null) => (e ? reject(e) : resolve()),
      )
    );
  const write = async () => {
    const blobs = new Map<string, Descriptor>();
    const index: Index = { schemaVersion: 2, mediaType: MEDIA_TYPES.ociIndex, manifests: [] };
    const docker: DockerManifestEntry[] = [];
    const repositories: Record<string, Record<string, string>> = {};
    for (const img of images) {
      await collect(content, img.target, opts, blobs);
      const d = await dockerEntry(content, img, opts);
      if (d) {
        docker.push(d);
        for (const rt of d.RepoTags) {
          const cut = rt.lastIndexOf(":");
          const top = d.Layers.at(-1)?.split("/").at(-1);
          if (top) (repositories[rt.slice(0, cut)] ??= {})[rt.slice(cut + 1)] = top;
        }
      }
      const ref = parseReference(img.name);
      index.manifests.push({
        ...img.target,
        annotations: {
          ...img.target.annotations,
          [IMAGE_NAME_ANNOTATION]: img.name,
          ...(ref.tag ? { [REF_NAME_ANNOTATION]: ref.tag } : {}),
        },
      });
    }
    for (const desc of blobs.values()) {
      const { algorithm, hex } = parseDigest(desc.digest);
      const info = await content.info(desc.digest);
      const sink = tar.entry({
        name: `blobs/${algorithm}/${hex}`,
        size: info.size,
        mode: 0o644,
        mtime: FIXED_MTIME,
      });
      const done = new Promise<void>((resolve, reject) => {
        sink.on("finish", resolve);
        sink.on("error", reject);
      });
      for await (const chunk of content.read(desc.digest)) {
        if (!sink.write(chunk)) await new Promise<void>((r) => sink.once("drain", () => r()));
      }
      sink.end(undefined);
      await done;
    }
    const enc = new TextEncoder();
    await entry("oci-layout", enc.encode(JSON.stringify({ imageLayoutVersion: "1.0.0" })));
    await entry("index.json", enc.encode(JSON.stringify(index)));
    if (docker.length) {
      await entry("manifest.json", enc.encode(JSON.stringify(docker)));
      await entry("repositories", enc.encode(JSON.stringify(repositories)));
    }
    tar.finalize();
  };
  const failed = write().catch((e) => tar.destroy(e));
  void failed;
  return new ReadableStream<Uint8Array>({
    start(controller) {
      tar.on("data", (c: unknown) => {
        controller.enqueue(new Uint8Array(c as Uint8Array));
        if ((controller.desiredSize ?? 1) <= 0) tar.pause();
      });
      tar.on("end", () => controller.close());
      tar.on("error", (e: Error) => controller.error(e));
    },
    pull() {
      tar.resume();
    },
    cancel(reason) {
      tar.destroy(reason instanceof Error ? reason : new Error(String(reason)));
    },
  }, { highWaterMark: 4 });
}
