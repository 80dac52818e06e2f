/**
 * Which AppArmor profile a CRI container (or pod sandbox) runs under, from its security
 * context, as containerd 2.2 decides it:
 *
 * - the structured `apparmor` SecurityProfile wins over the deprecated `apparmor_profile`
 *   string ("runtime/default", "unconfined", "localhost/<name>"); sandboxes have only the
 *   structured field;
 * - RuntimeDefault, and a container that asks for nothing, get `k8scontainerd-default`
 *   (loaded by the daemon on first use) — except a privileged container, which runs
 *   unconfined unless it names a Localhost profile;
 * - Unconfined gets no profile; Localhost gets the named profile, which must be loaded;
 * - on a host without AppArmor nothing is applied, and a Localhost profile is refused (it
 *   cannot be honoured). containerd also refuses an explicit RuntimeDefault there; the
 *   kubelet's own admission already refuses such pods, so here it simply means no profile.
 *
 * A sandbox that asks for nothing runs its pause process unconfined, as in containerd and
 * CRI-O.
 *
 * @example
 * ```ts
 * import { appArmorProfile, requestedAppArmor } from "./apparmor.ts";
 * import { systemAppArmor } from "../runtime/apparmor.ts";
 * const sc = { apparmorProfile: "runtime/default" };
 * const name = await appArmorProfile(requestedAppArmor(sc), false, systemAppArmor());
 * // "k8scontainerd-default" where AppArmor is on, undefined where it is off
 * ```
 */
import {
  type ContainerConfig,
  type PodSandboxConfig,
  type SecurityProfile,
  SecurityProfile_ProfileType,
} from "../gen/runtime/v1/api.ts";
import { FailedPreconditionError, InvalidArgumentError } from "../errdefs/errors.ts";
import {
  type AppArmorHost,
  DEFAULT_PROFILE,
  ENABLED_PARAM,
  SECURITYFS_DIR,
  systemAppArmor,
} from "../runtime/apparmor.ts";
import type { CriContext } from "./context.ts";

/** What a security context asks for; undefined when it asks for nothing. */
export type AppArmorRequest =
  | { type: "RuntimeDefault" }
  | { type: "Unconfined" }
  | { type: "Localhost"; name: string };

const LOCALHOST = "localhost/";

/**
 * The request in a security context: the structured `apparmor` field when set, else the
 * deprecated `apparmorProfile` string. Malformed requests are InvalidArgument.
 */
export function requestedAppArmor(
  sc: { apparmor?: SecurityProfile; apparmorProfile?: string } | undefined,
): AppArmorRequest | undefined {
  const p = sc?.apparmor;
  if (p) {
    const ref = p.localhostRef ?? "";
    switch (p.profileType) {
      case SecurityProfile_ProfileType.Localhost: {
        // The kubelet sends the bare name; a "localhost/" prefix is tolerated, as containerd does.
        const name = ref.startsWith(LOCALHOST) ? ref.slice(LOCALHOST.length) : ref;
        if (!name) {
          throw new InvalidArgumentError(
            "apparmor: profile_type Localhost needs localhost_ref (the name of a loaded profile)",
          );
        }
        return { type: "Localhost", name };
      }
      case SecurityProfile_ProfileType.RuntimeDefault:
      case SecurityProfile_ProfileType.Unconfined:
        if (ref) {
          throw new InvalidArgumentError(
            `apparmor: localhost_ref ${
              JSON.stringify(ref)
            } is only allowed with profile_type Localhost`,
          );
        }
        return {
          type: p.profileType === SecurityProfile_ProfileType.Unconfined
            ? "Unconfined"
            : "RuntimeDefault",
        };
      default:
        throw new InvalidArgumentError(`apparmor: unknown profile_type ${p.profileType}`);
    }
  }
  const legacy = sc?.apparmorProfile ?? "";
  if (legacy === "") return undefined;
  if (legacy === "runtime/default" || legacy === "docker/default") {
    return { type: "RuntimeDefault" };
  }
  if (legacy === "unconfined") return { type: "Unconfined" };
  if (legacy.startsWith(LOCALHOST) && legacy.length > LOCALHOST.length) {
    return { type: "Localhost", name: legacy.slice(LOCALHOST.length) };
  }
  throw new InvalidArgumentError(
    `unknown AppArmor profile ${
      JSON.stringify(legacy)
    }: use runtime/default, unconfined or localhost/<profile name>`,
  );
}

/**
 * The profile name to put in the OCI spec for `req` (undefined: none), loading the default
 * profile when it is the one chosen. Refusals: a Localhost profile on a host without AppArmor,
 * or one that is not loaded (FailedPrecondition, naming it).
 */
export async function appArmorProfile(
  req: AppArmorRequest | undefined,
  privileged: boolean,
  host: AppArmorHost,
): Promise<string | undefined> {
  if (!host.enabled()) {
    if (req?.type === "Localhost") {
      throw new FailedPreconditionError(
        `AppArmor profile "localhost/${req.name}" cannot be applied: AppArmor is not enabled ` +
          `on this host (${ENABLED_PARAM} is not "Y" or ${SECURITYFS_DIR} is missing)`,
      );
    }
    return undefined;
  }
  const r = req ?? { type: "RuntimeDefault" };
  switch (r.type) {
    case "Unconfined":
      return undefined;
    case "RuntimeDefault":
      // A privileged container is unconfined unless it names a profile (containerd's rule).
      if (privileged) return undefined;
      await host.ensureDefault();
      return DEFAULT_PROFILE;
    case "Localhost":
      if (!(await host.isLoaded(r.name))) {
        throw new FailedPreconditionError(
          `AppArmor profile "${r.name}" is not loaded on this host (not in ` +
            `${SECURITYFS_DIR}/profiles): load it with apparmor_parser before using localhost/${r.name}`,
        );
      }
      return r.name;
  }
}

/** The AppArmor profile for a CRI container's spec (see the module comment). */
export function containerAppArmorProfile(
  ctx: Pick<CriContext, "log">,
  config: ContainerConfig,
  host: AppArmorHost = systemAppArmor((msg, f) => ctx.log.info(msg, f)),
): Promise<string | undefined> {
  const sc = config.linux?.securityContext;
  return appArmorProfile(requestedAppArmor(sc), !!sc?.privileged, host);
}

/** The AppArmor profile for a pod's pause container: only what the sandbox asks for. */
export function sandboxAppArmorProfile(
  ctx: Pick<CriContext, "log">,
  config: PodSandboxConfig,
  host: AppArmorHost = systemAppArmor((msg, f) => ctx.log.info(msg, f)),
): Promise<string | undefined> {
  const sc = config.linux?.securityContext;
  const req = requestedAppArmor({ apparmor: sc?.apparmor });
  if (!req) return Promise.resolve(undefined);
  return appArmorProfile(req, !!sc?.privileged, host);
}
