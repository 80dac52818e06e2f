/**
 * The OCI image vocabulary every image component shares: media types, descriptors, manifests,
 * indexes, image configs and platforms (OCI image-spec 1.1, plus Docker schema2 equivalents).
 *
 * @example
 * ```ts
 * import { MEDIA_TYPES, isIndex, type Descriptor } from "./oci.ts";
 * const d: Descriptor = { mediaType: MEDIA_TYPES.ociIndex, digest: "sha256:…", size: 512 };
 * isIndex(d.mediaType); // true
 * ```
 */

export const MEDIA_TYPES = {
  ociManifest: "application/vnd.oci.image.manifest.v1+json",
  ociIndex: "application/vnd.oci.image.index.v1+json",
  ociConfig: "application/vnd.oci.image.config.v1+json",
  ociLayer: "application/vnd.oci.image.layer.v1.tar",
  ociLayerGzip: "application/vnd.oci.image.layer.v1.tar+gzip",
  ociLayerZstd: "application/vnd.oci.image.layer.v1.tar+zstd",
  ociLayerNondistributableGzip: "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  dockerManifestList: "application/vnd.docker.distribution.manifest.list.v2+json",
  dockerConfig: "application/vnd.docker.container.image.v1+json",
  dockerLayerGzip: "application/vnd.docker.image.rootfs.diff.tar.gzip",
  dockerLayerForeignGzip: "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
  dockerSchema1: "application/vnd.docker.distribution.manifest.v1+json",
  dockerSchema1Signed: "application/vnd.docker.distribution.manifest.v1+prettyjws",
} as const;

export interface Platform {
  architecture: string;
  os: string;
  variant?: string;
  "os.version"?: string;
  "os.features"?: string[];
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: Platform;
  urls?: string[];
}

export interface Manifest {
  schemaVersion: 2;
  mediaType?: string;
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string>;
}

export interface Index {
  schemaVersion: 2;
  mediaType?: string;
  manifests: Descriptor[];
  annotations?: Record<string, string>;
}

export interface ImageConfig {
  architecture: string;
  os: string;
  variant?: string;
  created?: string;
  config?: {
    User?: string;
    Env?: string[];
    Entrypoint?: string[] | null;
    Cmd?: string[] | null;
    WorkingDir?: string;
    Labels?: Record<string, string>;
    StopSignal?: string;
    ExposedPorts?: Record<string, unknown>;
    Volumes?: Record<string, unknown>;
  };
  rootfs: { type: "layers"; diff_ids: string[] };
  history?: unknown[];
}

export function isManifest(mediaType: string): boolean {
  return mediaType === MEDIA_TYPES.ociManifest || mediaType === MEDIA_TYPES.dockerManifest;
}

export function isIndex(mediaType: string): boolean {
  return mediaType === MEDIA_TYPES.ociIndex || mediaType === MEDIA_TYPES.dockerManifestList;
}

export function isConfig(mediaType: string): boolean {
  return mediaType === MEDIA_TYPES.ociConfig || mediaType === MEDIA_TYPES.dockerConfig;
}

export function isSchema1(mediaType: string): boolean {
  return mediaType === MEDIA_TYPES.dockerSchema1 || mediaType === MEDIA_TYPES.dockerSchema1Signed;
}

/** Layer compression by media type; null when the type is not a layer we can unpack. */
export function layerCompression(mediaType: string): "gzip" | "zstd" | "none" | null {
  switch (mediaType) {
    case MEDIA_TYPES.ociLayer:
    case "application/vnd.docker.image.rootfs.diff.tar":
      return "none";
    case MEDIA_TYPES.ociLayerGzip:
    case MEDIA_TYPES.ociLayerNondistributableGzip:
    case MEDIA_TYPES.dockerLayerGzip:
    case MEDIA_TYPES.dockerLayerForeignGzip:
      return "gzip";
    case MEDIA_TYPES.ociLayerZstd:
      return "zstd";
    default:
      return null;
  }
}

/** The media types a registry client asks for when resolving, most preferred first. */
export const MANIFEST_ACCEPT = [
  MEDIA_TYPES.ociIndex,
  MEDIA_TYPES.ociManifest,
  MEDIA_TYPES.dockerManifestList,
  MEDIA_TYPES.dockerManifest,
  "*/*",
];

/** The host's platform in OCI terms (arm64 is variant v8, as containerd normalises it). */
export function hostPlatform(): Platform {
  return Deno.build.arch === "aarch64"
    ? { os: "linux", architecture: "arm64", variant: "v8" }
    : { os: "linux", architecture: "amd64" };
}

/** Normalises arch aliases and the arm64 default variant, so "aarch64" matches "arm64/v8". */
export function normalizePlatform(p: Platform): Platform {
  let architecture = p.architecture.toLowerCase();
  let variant = p.variant;
  if (architecture === "aarch64") architecture = "arm64";
  if (architecture === "x86_64" || architecture === "x86-64") architecture = "amd64";
  if (architecture === "arm64" && (variant === undefined || variant === "")) variant = "v8";
  if (architecture === "arm" && (variant === undefined || variant === "")) variant = "v7";
  return { ...p, os: p.os.toLowerCase(), architecture, variant };
}

/** Parses "linux/arm64/v8" (os/arch[/variant]). */
export function parsePlatform(s: string): Platform {
  const parts = s.split("/");
  if (parts.length < 2 || parts.length > 3 || parts.some((x) => x === "")) {
    throw new Error(`invalid platform "${s}": expected os/arch[/variant], e.g. linux/arm64/v8`);
  }
  return normalizePlatform({ os: parts[0], architecture: parts[1], variant: parts[2] });
}

export function formatPlatform(p: Platform): string {
  return [p.os, p.architecture, p.variant].filter(Boolean).join("/");
}

/** True when `candidate` can run where `want` is asked for (same os, arch and variant). */
export function platformMatches(want: Platform, candidate: Platform): boolean {
  const a = normalizePlatform(want), b = normalizePlatform(candidate);
  return a.os === b.os && a.architecture === b.architecture &&
    (a.variant ?? "") === (b.variant ?? "");
}
