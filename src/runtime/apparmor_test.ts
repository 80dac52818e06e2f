import { afterAll, beforeAll, describe, expect, it } from "../testing/bdd.ts";
import { isKind } from "../errdefs/errors.ts";
import {
  appArmorSummary,
  DEFAULT_PROFILE,
  defaultProfile,
  parseLoadedProfiles,
  SystemAppArmor,
} from "./apparmor.ts";

function parser(): string | undefined {
  for (const p of ["/sbin/apparmor_parser", "/usr/sbin/apparmor_parser"]) {
    try {
      Deno.statSync(p);
      return p;
    } catch { /* next */ }
  }
  return undefined;
}

/** apparmor_parser -QK: parse and compile without a kernel (works where AppArmor is off). */
async function compiles(text: string): Promise<{ ok: boolean; err: string }> {
  const child = new Deno.Command(parser()!, {
    args: ["-QK"],
    stdin: "piped",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(text));
  await w.close();
  const out = await child.output();
  return { ok: out.success, err: new TextDecoder().decode(out.stderr) };
}

describe("parseLoadedProfiles", () => {
  it("maps each loaded profile to its mode", () => {
    const m = parseLoadedProfiles(
      "k8scontainerd-default (enforce)\n/usr/bin/man (complain)\nodd name with spaces? (kill)\n\n",
    );
    expect([...m]).toEqual([
      ["k8scontainerd-default", "enforce"],
      ["/usr/bin/man", "complain"],
      ["odd name with spaces?", "kill"],
    ]);
    expect(m.has("k8scontainerd")).toBe(false);
  });
});

describe("defaultProfile", () => {
  const full = defaultProfile({ abi: "abi/3.0", tunables: true, baseAbstraction: true });

  it("is named k8scontainerd-default and keeps the container's own files usable", () => {
    expect(full).toContain(
      "profile k8scontainerd-default flags=(attach_disconnected,mediate_deleted) {",
    );
    for (const rule of ["file,", "network,", "capability,", "umount,"]) {
      expect(full).toContain(`\n  ${rule}\n`);
    }
    expect(full).toContain("abi <abi/3.0>,");
    expect(full).toContain("#include <tunables/global>");
    expect(full).toContain("#include <abstractions/base>");
  });

  it("denies mounts, kernel tunables, raw memory, securityfs and firmware", () => {
    expect(full).toContain("deny mount,");
    expect(full).toContain("deny @{PROC}/* w,");
    expect(full).toMatch(/deny @\{PROC\}\/\{[^}]*\bsys\b[^}]*\}\/\*\* wklx,/);
    expect(full).toContain("deny @{PROC}/{kcore,kmem,mem,sysrq-trigger} rwklx,");
    expect(full).toContain("deny /sys/kernel/security/** rwklx,");
    expect(full).toContain("deny /sys/firmware/** rwklx,");
    // No rule on a process's own /proc/<pid>/ (attr/current, oom_score_adj stay usable).
    expect(full).not.toMatch(/@\{PROC\}\/\*\*/);
  });

  it("takes signals from the host side and its own peers; traces only its own", () => {
    for (const peer of ["unconfined", "runc", "crun"]) {
      expect(full).toContain(`signal (receive) peer=${peer},`);
    }
    expect(full).toContain("signal (send,receive) peer=k8scontainerd-default,");
    expect(full).toContain("ptrace (trace,tracedby,read,readby) peer=k8scontainerd-default,");
    // A confined daemon is named as a peer too, once, without its mode.
    const confined = defaultProfile({ daemonProfile: "k8scontainerd-daemon (enforce)\n" });
    expect(confined).toContain("signal (receive) peer=k8scontainerd-daemon,");
    expect(confined.match(/peer=unconfined/g)?.length).toBe(1);
  });

  it("defines @{PROC} itself without the tunables, and leaves out what the host lacks", () => {
    const bare = defaultProfile();
    expect(bare).toContain("@{PROC}=/proc/");
    expect(bare).not.toContain("abi <");
    expect(bare).not.toContain("#include");
  });

  it("refuses a name that is not a plain profile name", () => {
    expect(() => defaultProfile({ name: "x { file, } profile y" })).toThrow(/not a plain name/);
  });

  const noParser = parser() === undefined;
  it.skipIf(noParser, "apparmor_parser not installed (Debian package apparmor)")(
    "compiles with apparmor_parser, with and without the host's policy files",
    async () => {
      expect(await compiles(full)).toMatchObject({ ok: true });
      expect(await compiles(defaultProfile())).toMatchObject({ ok: true });
      expect(await compiles(defaultProfile({ name: "other", daemonProfile: "d (enforce)" })))
        .toMatchObject({ ok: true });
      // The check itself catches a broken profile.
      expect((await compiles("profile x {\n  bogus rule\n}\n")).ok).toBe(false);
    },
  );
});

describe("SystemAppArmor", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await Deno.makeTempDir({ prefix: "k8sc-apparmor-" });
  });
  afterAll(() => Deno.remove(dir, { recursive: true }));

  /** A fake host: the kernel parameter, securityfs' profiles file and a parser script. */
  async function host(name: string, o: { param?: string; securityfs?: boolean; fail?: boolean }) {
    const base = `${dir}/${name}`;
    await Deno.mkdir(`${base}/policy`, { recursive: true });
    if (o.param !== undefined) await Deno.writeTextFile(`${base}/enabled`, o.param);
    if (o.securityfs) {
      await Deno.mkdir(`${base}/securityfs`);
      await Deno.writeTextFile(`${base}/securityfs/profiles`, "/usr/bin/man (enforce)\n");
    }
    // Records its arguments and the text it got; "loads" it by listing the profile.
    await Deno.writeTextFile(
      `${base}/parser`,
      `#!/bin/sh\necho "$*" >> ${base}/calls\ncat > ${base}/loaded.txt\n` +
        (o.fail
          ? `echo "parse error at line 3" >&2; exit 1\n`
          : `sleep 0.2; echo "${DEFAULT_PROFILE} (enforce)" >> ${base}/securityfs/profiles\n`),
      { mode: 0o755 },
    );
    const aa = new SystemAppArmor({
      enabledParam: `${base}/enabled`,
      securityfsDir: `${base}/securityfs`,
      policyDir: `${base}/policy`,
      parser: `${base}/parser`,
    });
    const calls = () => Deno.readTextFile(`${base}/calls`).catch(() => "");
    return { aa, base, calls };
  }

  it("is enabled only with the parameter at Y and AppArmor's securityfs directory", async () => {
    expect((await host("on", { param: "Y\n", securityfs: true })).aa.enabled()).toBe(true);
    expect((await host("off", { param: "N\n", securityfs: true })).aa.enabled()).toBe(false);
    expect((await host("nofs", { param: "Y\n" })).aa.enabled()).toBe(false);
    expect((await host("nomod", { securityfs: true })).aa.enabled()).toBe(false);
  });

  it("loads the default profile once with -Kr, even for concurrent containers", async () => {
    const { aa, base, calls } = await host("load", { param: "Y", securityfs: true });
    expect(await aa.isLoaded(DEFAULT_PROFILE)).toBe(false);
    expect(await aa.isLoaded("/usr/bin/man")).toBe(true);
    await Promise.all([aa.ensureDefault(), aa.ensureDefault(), aa.ensureDefault()]);
    await aa.ensureDefault(); // loaded now: the parser does not run again
    expect(await calls()).toBe("-Kr\n");
    expect(await aa.isLoaded(DEFAULT_PROFILE)).toBe(true);
    // The host has no policy files here: the text it loaded stands alone.
    const loaded = await Deno.readTextFile(`${base}/loaded.txt`);
    expect(loaded).toBe(defaultProfile());
  });

  it("uses the host's abi, tunables and base abstraction when /etc/apparmor.d has them", async () => {
    const { aa, base } = await host("policy", { param: "Y", securityfs: true });
    for (const f of ["abi/3.0", "tunables/global", "abstractions/base"]) {
      await Deno.mkdir(`${base}/policy/${f.split("/")[0]}`, { recursive: true });
      await Deno.writeTextFile(`${base}/policy/${f}`, "");
    }
    await aa.ensureDefault();
    const loaded = await Deno.readTextFile(`${base}/loaded.txt`);
    expect(loaded).toContain("abi <abi/3.0>,");
    expect(loaded).toContain("#include <tunables/global>");
    expect(loaded).toContain("#include <abstractions/base>");
  });

  it("sums the state up for doctor: off, on with or without the parser, loaded or not", async () => {
    const off = await host("doctor-off", { param: "N", securityfs: true });
    expect(await appArmorSummary(off.aa, "/sbin/apparmor_parser")).toMatchObject({
      status: "ok",
      detail: expect.stringContaining("off: containers run without a profile"),
    });
    const on = await host("doctor-on", { param: "Y", securityfs: true });
    expect(await appArmorSummary(on.aa, null)).toMatchObject({
      status: "warn",
      fix: "install the apparmor package (apparmor_parser)",
    });
    expect((await appArmorSummary(on.aa, "/p")).detail).toBe(
      `on; ${DEFAULT_PROFILE} loads with the first container; /p`,
    );
    await on.aa.ensureDefault();
    expect((await appArmorSummary(on.aa, null)).detail).toBe(`on; ${DEFAULT_PROFILE} loaded`);
  });

  it("reports a failed load with the parser's words, and tries again next time", async () => {
    const { aa, calls } = await host("fail", { param: "Y", securityfs: true, fail: true });
    const e = await aa.ensureDefault().catch((e) => e);
    expect(isKind(e, "failed-precondition")).toBe(true);
    expect(e.message).toContain(`loading AppArmor profile ${DEFAULT_PROFILE}`);
    expect(e.message).toContain("parse error at line 3");
    await aa.ensureDefault().catch(() => {});
    expect(await calls()).toBe("-Kr\n-Kr\n");
  });
});
