/**
 * Importing images from a tarball: an OCI image layout (ours, containerd's, skopeo's, Docker
 * 25+'s `docker save`) or a classic `docker save` (manifest.json + <id>/layer.tar). Blobs go
 * through the content store's verified writer as they stream in (a blob whose bytes do not
 * match its name is refused), names come from the layout's annotations or RepoTags, and images
 * appear in one transaction at the end — a broken tarball leaves no image behind.
 *
 * @example
 * ```ts
 * const records = await importTarball(deps, "default", file.readable, { baseName: "example.com/app" });
 * ```
 */
import { extract } from "tar-stream";
import type { ContentStore } from "../../content/store.ts";
import { digestOf, parseDigest } from "../../content/digest.ts";
import { InvalidArgumentError, isKind } from "../../errdefs/errors.ts";
import {
  type Descriptor,
  type Index,
  isIndex,
  isManifest,
  type Manifest,
  MEDIA_TYPES,
  type Platform,
} from "../../images/oci.ts";
import { normalize } from "../../remotes/reference.ts";
import {
  MAX_MANIFEST_SIZE,
  parseJson,
  readJson,
  selectManifests,
  validateIndex,
  validateManifest,
} from "./manifests.ts";
import { IMAGE_NAME_ANNOTATION, REF_NAME_ANNOTATION } from "./export.ts";

/** What import needs: the content store, and a way to record and unpack what it found. */
export interface ImportSink {
  content: ContentStore;
  /** Records every content digest in the namespace (called before images are created). */
  addContent(descs: Descriptor[]): void;
}

export interface ImportOptions {
  /** Name for images the tarball does not name, or repository for tag-only names. */
  baseName?: string;
  platform?: Platform;
}

export interface ImportedImage {
  name: string;
  target: Descriptor;
}

interface Stored {
  digest: string;
  size: number;
}

const DOCKER_LAYER_TAR = "application/vnd.docker.image.rootfs.diff.tar";
const SMALL_FILES = new Set(["index.json", "oci-layout", "manifest.json", "repositories"]);

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

function cleanName(name: string): string {
  return name.replace(/^(\.\/)+/, "").replace(/\/+$/, "");
}

/** Reads the tarball, storing blobs; returns the images it names (not yet recorded). */
export async function readTarball(
  sink: ImportSink,
  stream: ReadableStream<Uint8Array>,
  opts: ImportOptions,
): Promise<ImportedImage[]> {
  const ex = extract();
  const small = new Map<string, Uint8Array>();
  const files = new Map<string, Stored>(); // non-blob files (docker save), by path
  const blobs = new Set<string>();
  let n = 0;

  const feed = (async () => {
    try {
      for await (const chunk of stream) {
        if (!ex.write(chunk)) await new Promise<void>((r) => ex.once("drain", () => r()));
      }
      ex.end(undefined);
    } catch (e) {
      ex.destroy(e as Error);
    }
  })();

  for await (const entry of ex) {
    const h = entry.header;
    const name = cleanName(h.name);
    if (h.type !== "file") {
      entry.resume();
      continue;
    }
    const size = h.size ?? 0;
    const blob = /^blobs\/(sha256|sha512)\/([0-9a-f]+)$/.exec(name);
    if (SMALL_FILES.has(name)) {
      if (size > MAX_MANIFEST_SIZE) {
        throw new InvalidArgumentError(
          `import: ${name} is ${size} bytes, over the ${MAX_MANIFEST_SIZE}-byte limit`,
        );
      }
      const parts: Uint8Array[] = [];
      for await (const c of entry) parts.push((c as Uint8Array).slice());
      small.set(name, concat(parts));
      continue;
    }
    const expected = blob ? `${blob[1]}:${blob[2]}` : undefined;
    if (expected) parseDigest(expected);
    if (expected && await sink.content.exists(expected)) {
      entry.resume();
      blobs.add(expected);
      continue;
    }
    const w = await sink.content.writer(`import-${Deno.pid}-${n++}`, { total: size, expected });
    try {
      if (w.offset) await w.truncate(0);
      for await (const chunk of entry) await w.write(chunk as Uint8Array);
      const digest = await w.commit({ size, digest: expected });
      if (expected) blobs.add(digest);
      else files.set(name, { digest, size });
    } catch (e) {
      await w.abort().catch(() => {});
      if (isKind(e, "invalid-argument")) {
        throw new InvalidArgumentError(`import: tar entry ${name}: ${(e as Error).message}`);
      }
      throw e;
    }
  }
  await feed;

  if (small.has("index.json")) {
    const idxDesc: Descriptor = {
      mediaType: MEDIA_TYPES.ociIndex,
      digest: digestOf(small.get("index.json")!),
      size: small.get("index.json")!.length,
    };
    const index = validateIndex(parseJson<Index>(small.get("index.json")!, idxDesc), idxDesc);
    const named = index.manifests.map((d) => ({ d, name: nameFromAnnotations(d, opts.baseName) }));
    // Docker 25+ writes both; its index.json may carry no names while manifest.json has RepoTags.
    if (named.every((x) => !x.name) && small.has("manifest.json")) {
      return await fromDockerManifest(sink, small.get("manifest.json")!, files, blobs, opts);
    }
    const out: ImportedImage[] = [];
    for (const { d, name } of named) {
      if (!name) {
        throw new InvalidArgumentError(
          `import: image ${d.digest} in the tarball has no name: pass --base-name`,
        );
      }
      const { annotations, ...rest } = d;
      const kept = Object.fromEntries(
        Object.entries(annotations ?? {}).filter(([k]) =>
          k !== IMAGE_NAME_ANNOTATION && k !== REF_NAME_ANNOTATION
        ),
      );
      out.push({ name, target: Object.keys(kept).length ? { ...rest, annotations: kept } : rest });
    }
    return out;
  }
  if (small.has("manifest.json")) {
    return await fromDockerManifest(sink, small.get("manifest.json")!, files, blobs, opts);
  }
  throw new InvalidArgumentError(
    "import: the tarball is neither an OCI image layout (no index.json) nor a docker save archive (no manifest.json)",
  );
}

function nameFromAnnotations(d: Descriptor, baseName?: string): string | undefined {
  const full = d.annotations?.[IMAGE_NAME_ANNOTATION];
  if (full) return normalize(full);
  const ref = d.annotations?.[REF_NAME_ANNOTATION];
  if (ref) {
    // A full reference, or just a tag to put on the base name.
    if (/[/:@]/.test(ref)) {
      try {
        return normalize(ref);
      } catch { /* not a reference: treat as a tag */ }
    }
    if (baseName) return normalize(`${baseName}:${ref}`);
  }
  return baseName ? normalize(baseName) : undefined;
}

async function fromDockerManifest(
  sink: ImportSink,
  bytes: Uint8Array,
  files: Map<string, Stored>,
  blobs: Set<string>,
  opts: ImportOptions,
): Promise<ImportedImage[]> {
  const desc: Descriptor = {
    mediaType: "application/json",
    digest: digestOf(bytes),
    size: bytes.length,
  };
  const entries = parseJson<{ Config: string; RepoTags?: string[] | null; Layers: string[] }[]>(
    bytes,
    desc,
  );
  if (!Array.isArray(entries)) {
    throw new InvalidArgumentError("import: manifest.json is not a list");
  }
  const find = (path: string): Stored => {
    const p = cleanName(path);
    const f = files.get(p);
    if (f) return f;
    const blob = /^blobs\/(sha256|sha512)\/([0-9a-f]+)$/.exec(p);
    if (blob && blobs.has(`${blob[1]}:${blob[2]}`)) {
      return { digest: `${blob[1]}:${blob[2]}`, size: -1 };
    }
    throw new InvalidArgumentError(
      `import: manifest.json names ${path}, which is not in the tarball`,
    );
  };
  const out: ImportedImage[] = [];
  for (const e of entries) {
    if (typeof e.Config !== "string" || !Array.isArray(e.Layers)) {
      throw new InvalidArgumentError("import: manifest.json entry lacks Config or Layers");
    }
    const sized = async (
      s: Stored,
    ) => (s.size >= 0 ? s : { digest: s.digest, size: (await sink.content.info(s.digest)).size });
    const config = await sized(find(e.Config));
    const layers: Descriptor[] = [];
    for (const l of e.Layers) {
      const s = await sized(find(l));
      const head = await readHead(sink.content, s.digest);
      const gz = head[0] === 0x1f && head[1] === 0x8b;
      layers.push({
        mediaType: gz ? MEDIA_TYPES.dockerLayerGzip : DOCKER_LAYER_TAR,
        digest: s.digest,
        size: s.size,
      });
    }
    const manifest: Manifest = {
      schemaVersion: 2,
      mediaType: MEDIA_TYPES.dockerManifest,
      config: { mediaType: MEDIA_TYPES.dockerConfig, digest: config.digest, size: config.size },
      layers,
    };
    const mbytes = new TextEncoder().encode(JSON.stringify(manifest));
    const digest = await sink.content.writeBlob(`import-manifest-${digestOf(mbytes)}`, mbytes, {
      expected: digestOf(mbytes),
      size: mbytes.length,
    });
    const target: Descriptor = {
      mediaType: MEDIA_TYPES.dockerManifest,
      digest,
      size: mbytes.length,
    };
    const names = (e.RepoTags ?? []).map((t) => normalize(t));
    if (!names.length) {
      if (!opts.baseName) {
        throw new InvalidArgumentError(
          `import: image with config ${config.digest} has no RepoTags: pass --base-name`,
        );
      }
      names.push(normalize(opts.baseName));
    }
    for (const name of names) out.push({ name, target });
  }
  return out;
}

async function readHead(content: ContentStore, digest: string): Promise<Uint8Array> {
  const reader = content.read(digest, { offset: 0, length: 4 }).getReader();
  const { value } = await reader.read();
  await reader.cancel();
  return value ?? new Uint8Array();
}

/** Every descriptor an imported image needs for a platform; errors name what is missing. */
export async function importedDescriptors(
  content: ContentStore,
  target: Descriptor,
  platform?: Platform,
): Promise<Descriptor[]> {
  const out: Descriptor[] = [];
  const visit = async (d: Descriptor, depth: number) => {
    if (!(await content.exists(d.digest))) {
      throw new InvalidArgumentError(
        `import: ${d.mediaType} ${d.digest} is referenced but not in the tarball`,
      );
    }
    out.push(d);
    if (depth > 4) return;
    if (isIndex(d.mediaType)) {
      const idx = validateIndex(await readJson<Index>(content, d), d);
      for (const m of selectManifests(idx, { platform }, d)) await visit(m, depth + 1);
    } else if (isManifest(d.mediaType)) {
      const m = validateManifest(await readJson<Manifest>(content, d), d);
      for (const c of [m.config, ...m.layers]) await visit(c, depth + 1);
    }
  };
  await visit(target, 0);
  return out;
}
