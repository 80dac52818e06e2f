import { describe, expect, it } from "../testing/bdd.ts";
import { isKind } from "../errdefs/errors.ts";
import {
  ContainerConfig,
  type DeepPartial,
  type LinuxContainerSecurityContext,
  PodSandboxConfig,
  SecurityProfile_ProfileType as T,
} from "../gen/runtime/v1/api.ts";
import { type AppArmorHost, DEFAULT_PROFILE } from "../runtime/apparmor.ts";
import {
  appArmorProfile,
  containerAppArmorProfile,
  requestedAppArmor,
  sandboxAppArmorProfile,
} from "./apparmor.ts";

/** A host whose AppArmor state the test sets: this build host cannot turn AppArmor on. */
function fakeHost(enabled: boolean, loaded: string[] = []) {
  const profiles = new Set(loaded);
  let loads = 0;
  const host: AppArmorHost = {
    enabled: () => enabled,
    isLoaded: (name) => Promise.resolve(profiles.has(name)),
    ensureDefault: () => {
      if (!profiles.has(DEFAULT_PROFILE)) {
        loads++;
        profiles.add(DEFAULT_PROFILE);
      }
      return Promise.resolve();
    },
  };
  return { host, loads: () => loads };
}

const ctx = { log: { info() {} } } as unknown as Parameters<typeof containerAppArmorProfile>[0];

function container(sc: DeepPartial<LinuxContainerSecurityContext>): ContainerConfig {
  return ContainerConfig.fromPartial({ linux: { securityContext: sc } });
}

async function refusal(p: Promise<unknown>, kind: "invalid-argument" | "failed-precondition") {
  const e = await p.then(() => undefined, (e) => e as Error);
  if (!e) throw new Error("expected a refusal");
  expect({ kind: isKind(e, kind), message: e.message }).toMatchObject({ kind: true });
  return e.message;
}

describe("requestedAppArmor", () => {
  it("reads the structured field", () => {
    expect(requestedAppArmor({ apparmor: { profileType: T.RuntimeDefault, localhostRef: "" } }))
      .toEqual({ type: "RuntimeDefault" });
    expect(requestedAppArmor({ apparmor: { profileType: T.Unconfined, localhostRef: "" } }))
      .toEqual({ type: "Unconfined" });
    expect(requestedAppArmor({ apparmor: { profileType: T.Localhost, localhostRef: "mine" } }))
      .toEqual({ type: "Localhost", name: "mine" });
    // A "localhost/" prefix in the ref is tolerated, as containerd does.
    expect(
      requestedAppArmor({ apparmor: { profileType: T.Localhost, localhostRef: "localhost/mine" } }),
    ).toEqual({ type: "Localhost", name: "mine" });
  });

  it("reads the deprecated string forms", () => {
    expect(requestedAppArmor({ apparmorProfile: "" })).toBeUndefined();
    expect(requestedAppArmor(undefined)).toBeUndefined();
    expect(requestedAppArmor({ apparmorProfile: "runtime/default" })).toEqual({
      type: "RuntimeDefault",
    });
    expect(requestedAppArmor({ apparmorProfile: "docker/default" })).toEqual({
      type: "RuntimeDefault",
    });
    expect(requestedAppArmor({ apparmorProfile: "unconfined" })).toEqual({ type: "Unconfined" });
    expect(requestedAppArmor({ apparmorProfile: "localhost/k8s-nginx" })).toEqual({
      type: "Localhost",
      name: "k8s-nginx",
    });
  });

  it("lets the structured field win over the deprecated string", () => {
    expect(requestedAppArmor({
      apparmor: { profileType: T.Unconfined, localhostRef: "" },
      apparmorProfile: "localhost/other",
    })).toEqual({ type: "Unconfined" });
    expect(requestedAppArmor({
      apparmor: { profileType: T.Localhost, localhostRef: "a" },
      apparmorProfile: "runtime/default",
    })).toEqual({ type: "Localhost", name: "a" });
  });

  it("refuses malformed requests as InvalidArgument, saying what is allowed", async () => {
    const bad = (sc: Parameters<typeof requestedAppArmor>[0]) =>
      refusal(Promise.resolve().then(() => requestedAppArmor(sc)), "invalid-argument");
    expect(await bad({ apparmorProfile: "mine" })).toContain(
      'unknown AppArmor profile "mine": use runtime/default, unconfined or localhost/<profile name>',
    );
    expect(await bad({ apparmorProfile: "localhost/" })).toContain("unknown AppArmor profile");
    expect(await bad({ apparmor: { profileType: T.Localhost, localhostRef: "" } })).toContain(
      "Localhost needs localhost_ref",
    );
    expect(await bad({ apparmor: { profileType: T.RuntimeDefault, localhostRef: "x" } }))
      .toContain('localhost_ref "x" is only allowed with profile_type Localhost');
  });
});

describe("appArmorProfile on a host with AppArmor", () => {
  it("gives RuntimeDefault and an unset profile k8scontainerd-default, loading it once", async () => {
    const h = fakeHost(true);
    expect(await appArmorProfile({ type: "RuntimeDefault" }, false, h.host)).toBe(DEFAULT_PROFILE);
    expect(await appArmorProfile(undefined, false, h.host)).toBe(DEFAULT_PROFILE);
    expect(h.loads()).toBe(1);
  });

  it("gives Unconfined no profile", async () => {
    const h = fakeHost(true);
    expect(await appArmorProfile({ type: "Unconfined" }, false, h.host)).toBeUndefined();
    expect(h.loads()).toBe(0);
  });

  it("gives a loaded Localhost profile by name and refuses one that is not loaded", async () => {
    const h = fakeHost(true, ["k8s-nginx"]);
    expect(await appArmorProfile({ type: "Localhost", name: "k8s-nginx" }, false, h.host))
      .toBe("k8s-nginx");
    const msg = await refusal(
      appArmorProfile({ type: "Localhost", name: "k8s-absent" }, false, h.host),
      "failed-precondition",
    );
    expect(msg).toContain('AppArmor profile "k8s-absent" is not loaded on this host');
    expect(msg).toContain("/sys/kernel/security/apparmor/profiles");
  });

  it("runs privileged containers unconfined unless they name a Localhost profile", async () => {
    const h = fakeHost(true, ["k8s-nginx"]);
    expect(await appArmorProfile(undefined, true, h.host)).toBeUndefined();
    expect(await appArmorProfile({ type: "RuntimeDefault" }, true, h.host)).toBeUndefined();
    expect(await appArmorProfile({ type: "Localhost", name: "k8s-nginx" }, true, h.host))
      .toBe("k8s-nginx");
    expect(h.loads()).toBe(0);
  });
});

describe("appArmorProfile on a host without AppArmor", () => {
  it("applies nothing for RuntimeDefault, unset and Unconfined", async () => {
    const h = fakeHost(false);
    expect(await appArmorProfile(undefined, false, h.host)).toBeUndefined();
    expect(await appArmorProfile({ type: "RuntimeDefault" }, false, h.host)).toBeUndefined();
    expect(await appArmorProfile({ type: "Unconfined" }, false, h.host)).toBeUndefined();
    expect(h.loads()).toBe(0);
  });

  it("refuses a Localhost profile, naming it and saying AppArmor is off here", async () => {
    const msg = await refusal(
      appArmorProfile({ type: "Localhost", name: "k8s-nginx" }, true, fakeHost(false).host),
      "failed-precondition",
    );
    expect(msg).toContain('AppArmor profile "localhost/k8s-nginx" cannot be applied');
    expect(msg).toContain("AppArmor is not enabled on this host");
  });
});

describe("containerAppArmorProfile / sandboxAppArmorProfile", () => {
  it("reads a container's security context, privileged flag included", async () => {
    const h = fakeHost(true, ["p"]);
    expect(await containerAppArmorProfile(ctx, container({}), h.host)).toBe(DEFAULT_PROFILE);
    expect(await containerAppArmorProfile(ctx, container({ privileged: true }), h.host))
      .toBeUndefined();
    expect(
      await containerAppArmorProfile(
        ctx,
        container({ apparmorProfile: "localhost/p", privileged: true }),
        h.host,
      ),
    ).toBe("p");
    expect(await containerAppArmorProfile(ctx, ContainerConfig.fromPartial({}), h.host))
      .toBe(DEFAULT_PROFILE);
  });

  it("confines a pause container only when the sandbox asks", async () => {
    const h = fakeHost(true, ["p"]);
    const pod = (apparmor?: { profileType: T; localhostRef: string }) =>
      PodSandboxConfig.fromPartial({ linux: { securityContext: { apparmor } } });
    expect(await sandboxAppArmorProfile(ctx, pod(), h.host)).toBeUndefined();
    expect(await sandboxAppArmorProfile(ctx, PodSandboxConfig.fromPartial({}), h.host))
      .toBeUndefined();
    expect(
      await sandboxAppArmorProfile(
        ctx,
        pod({ profileType: T.RuntimeDefault, localhostRef: "" }),
        h.host,
      ),
    ).toBe(DEFAULT_PROFILE);
    expect(
      await sandboxAppArmorProfile(
        ctx,
        pod({ profileType: T.Localhost, localhostRef: "p" }),
        h.host,
      ),
    ).toBe("p");
    await refusal(
      sandboxAppArmorProfile(
        ctx,
        pod({ profileType: T.Localhost, localhostRef: "p" }),
        fakeHost(false).host,
      ),
      "failed-precondition",
    );
  });
});
