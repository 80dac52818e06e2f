/**
 * Image references, parsed and normalised the way docker and containerd do it
 * (github.com/distribution/reference): `busybox` is `docker.io/library/busybox:latest`.
 *
 * @example
 * ```ts
 * import { familiarName, normalize, parseReference } from "./reference.ts";
 * normalize("busybox"); // "docker.io/library/busybox:latest"
 * parseReference("127.0.0.1:5000/app:1").domain; // "127.0.0.1:5000"
 * familiarName("docker.io/library/busybox:latest"); // "busybox:latest"
 * ```
 * @module
 */
import { InvalidArgumentError } from "../errdefs/errors.ts";
import { parseDigest } from "../content/digest.ts";

/** The registry that short names resolve to. */
export const DEFAULT_DOMAIN = "docker.io";
/** Docker Hub's legacy name, rewritten to {@linkcode DEFAULT_DOMAIN}. */
const LEGACY_DOMAIN = "index.docker.io";
/** The repository prefix for single-component Docker Hub names ("library/busybox"). */
const OFFICIAL_PREFIX = "library/";
/** The tag implied when a reference has neither tag nor digest. */
export const DEFAULT_TAG = "latest";
/** distribution/reference caps the whole name (domain/path) at 255 characters. */
const NAME_MAX = 255;

// The grammar of distribution/reference, as regular expressions.
const DOMAIN_COMPONENT = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
const DOMAIN_RE = new RegExp(
  `^(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[a-fA-F0-9:]+\\])(?::[0-9]+)?$`,
);
const PATH_COMPONENT_RE = /^[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*$/;
const TAG_RE = /^[\w][\w.-]{0,127}$/;
const ANCHORED_ID_RE = /^[a-f0-9]{64}$/;

/**
 * A parsed, normalised image reference.
 *
 * @example
 * ```ts
 * const r: Reference = parseReference("user/app:v1");
 * r.domain; // "docker.io"
 * r.path; // "user/app"
 * r.name; // "docker.io/user/app"
 * r.toString(); // "docker.io/user/app:v1"
 * ```
 */
export interface Reference {
  /** Registry host, with the port when one was given: "docker.io", "127.0.0.1:5000". */
  domain: string;
  /** Repository path inside the registry: "library/busybox". */
  path: string;
  /** The tag, when the reference names one (no default is filled in here). */
  tag?: string;
  /** The digest, when the reference names one ("sha256:…"). */
  digest?: string;
  /** `domain/path`, the repository name without tag or digest. */
  name: string;
  /** `name[:tag][@digest]`. */
  toString(): string;
}

function invalid(ref: string, problem: string): InvalidArgumentError {
  return new InvalidArgumentError(`invalid reference "${ref}": ${problem}`);
}

/** Splits "name[:tag][@digest]" into its parts without validating them. */
function split(s: string): { name: string; tag?: string; digest?: string } {
  let rest = s;
  let digest: string | undefined;
  const at = rest.indexOf("@");
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
  }
  // A ':' after the last '/' starts the tag; one before it is a port ("host:5000/app").
  const colon = rest.lastIndexOf(":");
  let tag: string | undefined;
  if (colon > rest.lastIndexOf("/")) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
  }
  return { name: rest, tag, digest };
}

/** Docker's rule: the first component is a registry only if it looks like a host name. */
function splitDomain(name: string): { domain: string; path: string } {
  const i = name.indexOf("/");
  if (i < 0) return { domain: DEFAULT_DOMAIN, path: name };
  const first = name.slice(0, i);
  const looksLikeHost = first.includes(".") || first.includes(":") || first === "localhost" ||
    first.toLowerCase() !== first;
  if (!looksLikeHost) return { domain: DEFAULT_DOMAIN, path: name };
  return { domain: first, path: name.slice(i + 1) };
}

function makeReference(domain: string, path: string, tag?: string, digest?: string): Reference {
  const name = `${domain}/${path}`;
  return {
    domain,
    path,
    tag,
    digest,
    name,
    toString: () => name + (tag !== undefined ? `:${tag}` : "") + (digest ? `@${digest}` : ""),
  };
}

/**
 * Parses an image reference and normalises its name the docker way: a missing registry is
 * docker.io, a single-component Docker Hub path gets "library/", index.docker.io becomes
 * docker.io. The tag and digest are kept as given (both may be present); no default tag is
 * added (see {@linkcode normalize}). Throws InvalidArgumentError naming the reference and what
 * is wrong with it.
 *
 * @example
 * ```ts
 * const r = parseReference("busybox:1.36@sha256:" + "a".repeat(64));
 * r.name; // "docker.io/library/busybox"
 * r.tag; // "1.36"
 * r.digest; // "sha256:aaaa…"
 * ```
 */
export function parseReference(s: string): Reference {
  if (s === "") throw invalid(s, "empty reference");
  if (ANCHORED_ID_RE.test(s)) {
    throw invalid(s, "a 64-character hexadecimal string is an image ID, not a reference");
  }
  const parts = split(s);
  if (parts.digest !== undefined) {
    try {
      parseDigest(parts.digest);
    } catch (e) {
      throw invalid(s, `bad digest: ${e instanceof Error ? e.message : e}`);
    }
  }
  if (parts.tag !== undefined && !TAG_RE.test(parts.tag)) {
    throw invalid(
      s,
      `bad tag "${parts.tag}": tags are 1-128 characters of [A-Za-z0-9_.-], not starting with . or -`,
    );
  }
  if (parts.name === "") throw invalid(s, "missing repository name");
  let { domain, path } = splitDomain(parts.name);
  if (!DOMAIN_RE.test(domain)) throw invalid(s, `bad registry host "${domain}"`);
  if (domain === LEGACY_DOMAIN) domain = DEFAULT_DOMAIN;
  if (path === "") throw invalid(s, "missing repository path after the registry host");
  if (path.toLowerCase() !== path) {
    throw invalid(s, `repository name "${path}" must be lowercase`);
  }
  for (const component of path.split("/")) {
    if (!PATH_COMPONENT_RE.test(component)) {
      throw invalid(
        s,
        `bad repository path component "${component}": expected lowercase letters and digits, ` +
          "separated by '.', '_', '__' or '-'",
      );
    }
  }
  if (domain === DEFAULT_DOMAIN && !path.includes("/")) path = OFFICIAL_PREFIX + path;
  const name = `${domain}/${path}`;
  if (name.length > NAME_MAX) {
    throw invalid(s, `repository name is ${name.length} characters, more than ${NAME_MAX}`);
  }
  return makeReference(domain, path, parts.tag, parts.digest);
}

/**
 * The fully-qualified form of a reference: registry, path, and `:latest` when neither a tag
 * nor a digest is given.
 *
 * @example
 * ```ts
 * normalize("busybox"); // "docker.io/library/busybox:latest"
 * normalize("user/app@sha256:" + "a".repeat(64)); // "docker.io/user/app@sha256:aaaa…"
 * ```
 */
export function normalize(s: string): string {
  return withDefaultTag(parseReference(s)).toString();
}

/**
 * The parsed reference with `latest` filled in when it names neither tag nor digest.
 *
 * @example
 * ```ts
 * withDefaultTag(parseReference("busybox")).tag; // "latest"
 * ```
 */
export function withDefaultTag(r: Reference): Reference {
  if (r.tag !== undefined || r.digest !== undefined) return r;
  return makeReference(r.domain, r.path, DEFAULT_TAG, undefined);
}

/**
 * The short form users type: docker.io and its "library/" prefix dropped; other registries kept.
 *
 * @example
 * ```ts
 * familiarName("docker.io/library/busybox:latest"); // "busybox:latest"
 * familiarName("docker.io/user/app"); // "user/app"
 * familiarName("127.0.0.1:5000/app:1"); // "127.0.0.1:5000/app:1"
 * ```
 */
export function familiarName(s: string): string {
  const r = parseReference(s);
  let name = r.name;
  if (r.domain === DEFAULT_DOMAIN) {
    name = r.path.startsWith(OFFICIAL_PREFIX) && r.path.split("/").length === 2
      ? r.path.slice(OFFICIAL_PREFIX.length)
      : r.path;
  }
  return name + (r.tag !== undefined ? `:${r.tag}` : "") + (r.digest ? `@${r.digest}` : "");
}

/**
 * The normalised reference pinned to `digest`. A tag in `name` is kept (docker's WithDigest);
 * pass `parseReference(ref).name` for a tag-less repo digest ("repo@sha256:…").
 *
 * @example
 * ```ts
 * withDigest("busybox", "sha256:" + "a".repeat(64)); // "docker.io/library/busybox@sha256:aaaa…"
 * withDigest("busybox:1", "sha256:" + "a".repeat(64)); // "docker.io/library/busybox:1@sha256:aaaa…"
 * ```
 */
export function withDigest(name: string, digest: string): string {
  const r = parseReference(name);
  try {
    parseDigest(digest);
  } catch (e) {
    throw invalid(`${name}@${digest}`, `bad digest: ${e instanceof Error ? e.message : e}`);
  }
  return makeReference(r.domain, r.path, r.tag, digest).toString();
}
