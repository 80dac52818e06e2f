import { describe, expect, it } from "../testing/bdd.ts";
import { InvalidArgumentError } from "../errdefs/errors.ts";
import { familiarName, normalize, parseReference, withDigest } from "./reference.ts";

const D = "sha256:" + "ab".repeat(32);

describe("normalize", () => {
  const table: [string, string][] = [
    ["busybox", "docker.io/library/busybox:latest"],
    ["busybox:1.36", "docker.io/library/busybox:1.36"],
    ["library/busybox", "docker.io/library/busybox:latest"],
    ["user/app", "docker.io/user/app:latest"],
    ["docker.io/busybox", "docker.io/library/busybox:latest"],
    ["index.docker.io/library/busybox:1", "docker.io/library/busybox:1"],
    ["127.0.0.1:5000/busybox:1", "127.0.0.1:5000/busybox:1"],
    ["127.0.0.1:5000/busybox", "127.0.0.1:5000/busybox:latest"],
    ["localhost/x", "localhost/x:latest"],
    ["localhost:5000/a/b/c:v1.2-rc_3", "localhost:5000/a/b/c:v1.2-rc_3"],
    ["registry.k8s.io/pause:3.9", "registry.k8s.io/pause:3.9"],
    ["Registry.Example/app", "Registry.Example/app:latest"],
    ["[::1]:5000/app", "[::1]:5000/app:latest"],
    ["my-reg.io/a__b/c.d/e--f:t", "my-reg.io/a__b/c.d/e--f:t"],
    [`busybox@${D}`, `docker.io/library/busybox@${D}`],
    [`busybox:1@${D}`, `docker.io/library/busybox:1@${D}`],
    [`127.0.0.1:5000/app@${D}`, `127.0.0.1:5000/app@${D}`],
  ];
  for (const [input, want] of table) {
    it(`${input} → ${want}`, () => expect(normalize(input)).toBe(want));
  }
});

describe("parseReference", () => {
  it("splits domain, path, tag and digest; keeps both tag and digest", () => {
    const r = parseReference(`127.0.0.1:5000/team/app:v1@${D}`);
    expect(r.domain).toBe("127.0.0.1:5000");
    expect(r.path).toBe("team/app");
    expect(r.tag).toBe("v1");
    expect(r.digest).toBe(D);
    expect(r.name).toBe("127.0.0.1:5000/team/app");
    expect(r.toString()).toBe(`127.0.0.1:5000/team/app:v1@${D}`);
  });

  it("fills in no default tag (normalize does)", () => {
    const r = parseReference("busybox");
    expect(r.tag).toBeUndefined();
    expect(r.toString()).toBe("docker.io/library/busybox");
  });

  it("accepts a 128-character tag and sha512 digests", () => {
    expect(parseReference("a:" + "t".repeat(128)).tag).toHaveLength(128);
    expect(parseReference(`a@sha512:${"0".repeat(128)}`).digest).toMatch(/^sha512:/);
  });

  const bad: [string, RegExp][] = [
    ["", /empty reference/],
    ["Busybox", /must be lowercase/],
    ["docker.io/Library/busybox", /must be lowercase/],
    ["busybox:", /bad tag ""/],
    ["busybox:-x", /bad tag "-x"/],
    ["busybox:.x", /bad tag/],
    ["busybox:" + "t".repeat(129), /bad tag/],
    ["busybox:a/b", /bad registry host "busybox:a"/],
    ["busybox@sha256:abc", /bad digest.*64/],
    ["busybox@md5:" + "0".repeat(32), /bad digest.*sha256 or sha512/],
    [`busybox@${D.toUpperCase().replace("SHA256", "sha256")}`, /bad digest/],
    ["a//b", /bad repository path component ""/],
    ["a/b_", /bad repository path component "b_"/],
    ["-a", /bad repository path component "-a"/],
    ["a/-b", /bad repository path component/],
    ["reg.io/", /missing repository path/],
    [":tag", /missing repository name/],
    ["bad_host.io:5000/app", /bad registry host "bad_host.io:5000"/],
    ["ab".repeat(32), /image ID/],
    ["reg.io/" + "a".repeat(250), /more than 255/],
  ];
  for (const [input, problem] of bad) {
    it(`rejects ${JSON.stringify(input.length > 40 ? input.slice(0, 40) + "…" : input)}`, () => {
      let err: unknown;
      try {
        parseReference(input);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(InvalidArgumentError);
      const msg = (err as Error).message;
      expect(msg).toContain(`invalid reference "${input}"`);
      expect(msg).toMatch(problem);
    });
  }
});

describe("familiarName", () => {
  it("drops docker.io and library/", () => {
    expect(familiarName("docker.io/library/busybox:latest")).toBe("busybox:latest");
    expect(familiarName("docker.io/library/busybox")).toBe("busybox");
    expect(familiarName("docker.io/user/app:v1")).toBe("user/app:v1");
    expect(familiarName(`docker.io/library/busybox@${D}`)).toBe(`busybox@${D}`);
    expect(familiarName("docker.io/library/a/b:1")).toBe("library/a/b:1");
  });
  it("keeps other registries", () => {
    expect(familiarName("127.0.0.1:5000/busybox:1")).toBe("127.0.0.1:5000/busybox:1");
    expect(familiarName("registry.k8s.io/pause:3.9")).toBe("registry.k8s.io/pause:3.9");
  });
});

describe("withDigest", () => {
  it("pins a repository, keeping a tag when given", () => {
    expect(withDigest("busybox", D)).toBe(`docker.io/library/busybox@${D}`);
    expect(withDigest("busybox:1", D)).toBe(`docker.io/library/busybox:1@${D}`);
    expect(withDigest(`busybox@${"sha256:" + "cd".repeat(32)}`, D)).toBe(
      `docker.io/library/busybox@${D}`,
    );
  });
  it("rejects a bad digest naming it", () => {
    expect(() => withDigest("busybox", "sha256:zz")).toThrow(/busybox@sha256:zz.*bad digest/);
  });
});
