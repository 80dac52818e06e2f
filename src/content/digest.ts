/**
 * Content digests ("sha256:<64 hex>", "sha512:<128 hex>"): validation, parsing and hashing.
 *
 * @example
 * ```ts
 * import { digestOf, parseDigest } from "./digest.ts";
 * const d = digestOf(new TextEncoder().encode("hi")); // "sha256:8f43…"
 * parseDigest(d).hex;
 * ```
 */
import { createHash, type Hash } from "node:crypto";
import { InvalidArgumentError } from "../errdefs/errors.ts";

export type Algorithm = "sha256" | "sha512";
const HEX_LENGTH: Record<Algorithm, number> = { sha256: 64, sha512: 128 };

export interface ParsedDigest {
  algorithm: Algorithm;
  hex: string;
}

/** Parses and validates a digest, naming what is wrong with it. */
export function parseDigest(digest: string): ParsedDigest {
  const i = digest.indexOf(":");
  const algorithm = digest.slice(0, i) as Algorithm;
  const hex = digest.slice(i + 1);
  if (i < 0 || !(algorithm in HEX_LENGTH)) {
    throw new InvalidArgumentError(
      `invalid digest "${digest}": algorithm must be sha256 or sha512`,
    );
  }
  if (hex.length !== HEX_LENGTH[algorithm] || !/^[0-9a-f]+$/.test(hex)) {
    throw new InvalidArgumentError(
      `invalid digest "${digest}": expected ${HEX_LENGTH[algorithm]} lowercase hex characters`,
    );
  }
  return { algorithm, hex };
}

/** A streaming hasher for the digest's algorithm. */
export function hasher(algorithm: Algorithm = "sha256"): Hash {
  return createHash(algorithm);
}

/** The digest of a byte string. */
export function digestOf(data: Uint8Array | string, algorithm: Algorithm = "sha256"): string {
  return `${algorithm}:${createHash(algorithm).update(data).digest("hex")}`;
}
