/** Conversions between service types and the management API's wire types. */
import type { Descriptor as WireDescriptor } from "../gen/k8scontainerd/types/descriptor.ts";
import type { Descriptor } from "../images/oci.ts";
import { InvalidArgumentError } from "../errdefs/errors.ts";
import { parsePlatform, type Platform } from "../images/oci.ts";

/** A Date as unix nanoseconds (what every *_at field carries). */
export function toNanos(d: Date | undefined): bigint {
  return d ? BigInt(d.getTime()) * 1_000_000n : 0n;
}

export function toWireDescriptor(d: Descriptor): WireDescriptor {
  return {
    mediaType: d.mediaType,
    digest: d.digest,
    size: BigInt(d.size),
    annotations: d.annotations ?? {},
  };
}

export function fromWireDescriptor(d: WireDescriptor | undefined, what: string): Descriptor {
  if (!d || !d.digest || !d.mediaType) {
    throw new InvalidArgumentError(
      `${what}: a target descriptor with media type and digest is required`,
    );
  }
  const out: Descriptor = { mediaType: d.mediaType, digest: d.digest, size: Number(d.size) };
  if (Object.keys(d.annotations).length) out.annotations = d.annotations;
  return out;
}

/** "" → undefined (the host's), else a parsed os/arch[/variant]. */
export function optionalPlatform(s: string): Platform | undefined {
  if (!s) return undefined;
  try {
    return parsePlatform(s);
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
}

/** Requires a non-empty string field, naming it. */
export function required(value: string, field: string): string {
  if (!value) throw new InvalidArgumentError(`${field} is required`);
  return value;
}
