/**
 * CRI `PullImage`, after containerd's pkg/cri/server/image_pull.go: pulls and unpacks the image
 * into the `k8s.io` namespace for the host platform, then records the references the CRI
 * works with, all pointing at the pulled root (manifest or index) and labelled
 * `io.cri-containerd.image=managed`:
 *
 * - the tag (`docker.io/library/busybox:latest`) when the reference has one,
 * - the repo digest (`docker.io/library/busybox@sha256:<root digest>`),
 * - the image id (`sha256:<config digest>`), so the image stays reachable by id even once
 *   every tag is gone (containerd 1.6+ does the same).
 *
 * Pulling a name that is present repoints it. The answer's `image_ref` is the image id.
 *
 * Credentials: the request's AuthConfig (username/password, base64 `auth`, identity token,
 * registry token) is used for this pull only. With `server_address` set it is used only when
 * that address names the image's registry (docker.io's aliases index.docker.io and
 * registry-1.docker.io count as docker.io); otherwise the daemon's configured credentials
 * apply, as in containerd. Limitation: the images service takes one credential for every host
 * a pull contacts, so a hosts.toml mirror of that registry receives them too (containerd
 * matches server_address against the mirror's host).
 *
 * Errors keep the typed mapping: a malformed reference is INVALID_ARGUMENT, an image or tag the
 * registry does not have NOT_FOUND, refused credentials FAILED_PRECONDITION, an unreachable
 * registry UNAVAILABLE (containerd answers UNKNOWN with "failed to pull and unpack image";
 * the kubelet and critest look only at success, so the more precise code costs nothing).
 *
 * @example
 * ```ts
 * server.add(ImageServiceService, { pullImage: pullImageHandler(view, log) });
 * ```
 */
import type { CallContext } from "../grpc/server.ts";
import type { AuthConfig, PullImageRequest, PullImageResponse } from "../gen/runtime/v1/api.ts";
import type { Logger } from "../log/logger.ts";
import { type Credentials, credentialsFromAuthConfig } from "../remotes/auth.ts";
import { parseReference } from "../remotes/reference.ts";
import { readConfig } from "../services/images/manifests.ts";
import type { ContentStore } from "../content/store.ts";
import {
  CRI_NAMESPACE,
  type CriImageView,
  MANAGED_LABEL,
  normalizeRef,
  PINNED_LABEL,
  requireImage,
} from "./image_view.ts";

const DOCKER_HUB_ALIASES = new Set(["docker.io", "index.docker.io", "registry-1.docker.io"]);

/** `https://ghcr.io/v2/` → `ghcr.io`; docker.io's aliases → `docker.io`. */
function serverHost(address: string): string {
  const host = address.replace(/^[a-z][a-z0-9+.-]*:\/\//i, "").replace(/\/.*$/, "");
  return DOCKER_HUB_ALIASES.has(host) ? "docker.io" : host;
}

/**
 * The credentials of an AuthConfig for a pull from `registry`, or undefined when it has none
 * or names another registry (containerd's ParseAuth).
 *
 * @example
 * ```ts
 * pullCredentials({ username: "u", password: "p", serverAddress: "ghcr.io" } as AuthConfig, "ghcr.io");
 * // { username: "u", password: "p" }
 * ```
 */
export function pullCredentials(
  auth: AuthConfig | undefined,
  registry: string,
): Credentials | undefined {
  if (!auth) return undefined;
  if (auth.serverAddress && serverHost(auth.serverAddress) !== serverHost(registry)) {
    return undefined;
  }
  return credentialsFromAuthConfig(auth);
}

/** The `PullImage` handler. */
export function pullImageHandler(
  view: CriImageView,
  content: ContentStore,
  log?: Logger,
): (req: PullImageRequest, ctx: CallContext) => Promise<PullImageResponse> {
  return async (req, ctx) => {
    const image = requireImage(req.image?.image, "PullImageRequest.image.image");
    const name = normalizeRef(image);
    const ref = parseReference(name);
    const credentials = pullCredentials(req.auth, ref.domain);
    const pod = req.sandboxConfig?.metadata;
    log?.info("PullImage", {
      image: name,
      ...(pod ? { pod: `${pod.namespace}/${pod.name}` } : {}),
      auth: credentials ? "request" : "none",
    });
    const pulled = await view.images.pull(CRI_NAMESPACE, name, {
      credentials,
      unpack: true,
      signal: ctx.signal,
    });
    const { manifest } = await readConfig(content, pulled.target);
    const id = manifest.manifest.config.digest;
    const repoDigest = `${ref.name}@${pulled.target.digest}`;
    const names = [...new Set([name, repoDigest, id])];
    const labels: Record<string, string> = { [MANAGED_LABEL]: "managed" };
    if (names.some((n) => view.isPinnedName(n))) labels[PINNED_LABEL] = "pinned";
    for (const n of names) view.upsert(n, pulled.target, labels);
    log?.info("PullImage done", { image: name, id, repoDigest, size: pulled.size });
    return { imageRef: id };
  };
}
