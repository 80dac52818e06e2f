/**
 * What the CRI runtime RPCs share: the services below them (pod networking among them), the CRI
 * records, and where per-pod files (hostname, hosts, resolv.conf, /dev/shm) live. CRI objects live in
 * the "k8s.io" namespace, as in containerd.
 */

import type { ContainerService } from "../services/containers/service.ts";
import type { SandboxService } from "../services/sandboxes/service.ts";
import type { ImageService } from "../services/images/service.ts";
import type { Logger } from "../log/logger.ts";
import type { CriStore } from "./store.ts";
import type { CriImageView } from "./image_view.ts";
import type { HandlerFeatures } from "../runtime/features.ts";
import type { CdiOptions } from "../cdi/inject.ts";

export { CRI_NAMESPACE } from "./image_view.ts";

export interface CriContext {
  containers: ContainerService;
  /** Pod-level resources: the pod's network, its /dev/shm, port-forward relays into its netns. */
  sandboxes: SandboxService;
  images: ImageService;
  /** Resolves CRI image references and ids (config digests) to image records. */
  imageView: CriImageView;
  store: CriStore;
  /** `<state>/cri`: per-sandbox files. */
  stateDir: string;
  /** The pause image every sandbox runs. */
  sandboxImage: string;
  /** "cgroupfs" or "systemd". */
  cgroupDriver: string;
  /** What each runtime handler can do here (user namespaces, recursive read-only mounts). */
  handlerFeatures: Record<string, HandlerFeatures>;
  /** The handler a pod with no runtime_handler gets. */
  defaultHandler: string;
  /** CDI devices in CreateContainer; undefined: on, with the default spec directories. */
  cdi?: CdiOptions;
  log: Logger;
}

/** The features of `handler` ("" is the default one); nothing for an unknown name. */
export function featuresOf(ctx: CriContext, handler: string): HandlerFeatures {
  return ctx.handlerFeatures[handler || ctx.defaultHandler] ??
    { recursiveReadOnlyMounts: false, userNamespaces: false };
}

/** A 64-hex id, as containerd and the kubelet use. */
export function newId(): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(32)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
}

export function sandboxDir(ctx: CriContext, id: string): string {
  return `${ctx.stateDir}/sandboxes/${id}`;
}

/** Milliseconds → the nanoseconds CRI timestamps carry. */
export function nanos(d: Date | undefined): bigint {
  return d ? BigInt(d.getTime()) * 1_000_000n : 0n;
}
