/**
 * The namespace a management call acts in: the "k8scontainerd-namespace" request header
 * (containerd's "containerd-namespace" works too), "default" when absent.
 */
import { type CallMetadata, NAMESPACE_HEADER } from "../grpc/call_metadata.ts";
import { InvalidArgumentError } from "../errdefs/errors.ts";

export { NAMESPACE_HEADER };
const CONTAINERD_HEADER = "containerd-namespace";
export const DEFAULT_NAMESPACE = "default";
const VALID = /^[a-zA-Z0-9]([a-zA-Z0-9._-]*[a-zA-Z0-9])?$/;

export function namespaceOf(md: CallMetadata): string {
  const v = md.get(NAMESPACE_HEADER)[0] ?? md.get(CONTAINERD_HEADER)[0];
  if (v === undefined) return DEFAULT_NAMESPACE;
  const ns = String(v);
  if (!VALID.test(ns) || ns.length > 76) {
    throw new InvalidArgumentError(`invalid namespace "${ns}" in the ${NAMESPACE_HEADER} header`);
  }
  return ns;
}
