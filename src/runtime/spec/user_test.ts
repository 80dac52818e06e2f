import { describe, expect, it } from "../../testing/bdd.ts";
import { isKind } from "../../errdefs/errors.ts";
import { parseGroup, parsePasswd, resolveUser } from "./user.ts";

const PASSWD = `# comment line
root:x:0:0:root:/root:/bin/sh

app:x:1000:1000:App:/home/app:/bin/sh
nohome:x:1001:1001::
broken line
bad:x:notanumber:1:::
`;
const GROUP = `root:x:0:
app:x:1000:
extra:x:2000:app,bob
  # indented comment
other:x:3000:bob
wheel:x:10: app
`;

function err(fn: () => unknown): Error {
  try {
    fn();
  } catch (e) {
    return e as Error;
  }
  throw new Error("expected an error");
}

describe("parsePasswd / parseGroup", () => {
  it("skips comments, blank and malformed lines", () => {
    expect(parsePasswd(PASSWD)).toEqual([
      { name: "root", uid: 0, gid: 0, home: "/root", shell: "/bin/sh" },
      { name: "app", uid: 1000, gid: 1000, home: "/home/app", shell: "/bin/sh" },
      { name: "nohome", uid: 1001, gid: 1001, home: "", shell: "" },
    ]);
    expect(parseGroup(GROUP)).toEqual([
      { name: "root", gid: 0, members: [] },
      { name: "app", gid: 1000, members: [] },
      { name: "extra", gid: 2000, members: ["app", "bob"] },
      { name: "other", gid: 3000, members: ["bob"] },
      { name: "wheel", gid: 10, members: ["app"] },
    ]);
  });
  it("tolerates CRLF line ends", () => {
    expect(parsePasswd("a:x:1:2::/h:/s\r\n")[0]).toEqual({
      name: "a",
      uid: 1,
      gid: 2,
      home: "/h",
      shell: "/s",
    });
  });
});

describe("resolveUser", () => {
  it('"" is root with root\'s home', () => {
    expect(resolveUser("", PASSWD, GROUP)).toEqual({
      uid: 0,
      gid: 0,
      additionalGids: [0],
      home: "/root",
      name: "root",
    });
  });
  it("a name: passwd uid/gid/home plus every group listing the user", () => {
    expect(resolveUser("app", PASSWD, GROUP)).toEqual({
      uid: 1000,
      gid: 1000,
      additionalGids: [1000, 2000, 10],
      home: "/home/app",
      name: "app",
    });
  });
  it("a numeric uid found in passwd takes its gid and groups", () => {
    expect(resolveUser("1000", PASSWD, GROUP).additionalGids).toEqual([1000, 2000, 10]);
  });
  it("a numeric uid not in passwd: gid 0, home /", () => {
    expect(resolveUser("4242", PASSWD, GROUP)).toEqual({
      uid: 4242,
      gid: 0,
      additionalGids: [0],
      home: "/",
    });
    expect(resolveUser("4242", undefined, undefined).home).toBe("/");
  });
  it("uid:gid, name:group, uid:group, name:gid", () => {
    expect(resolveUser("4242:7", PASSWD, GROUP)).toMatchObject({ uid: 4242, gid: 7 });
    expect(resolveUser("app:other", PASSWD, GROUP)).toMatchObject({
      uid: 1000,
      gid: 3000,
      additionalGids: [3000, 2000, 10],
    });
    expect(resolveUser("1000:extra", PASSWD, GROUP)).toMatchObject({ uid: 1000, gid: 2000 });
    expect(resolveUser("app:55", PASSWD, GROUP)).toMatchObject({ uid: 1000, gid: 55 });
  });
  it("empty home in passwd falls back to /", () => {
    expect(resolveUser("nohome", PASSWD, GROUP).home).toBe("/");
  });
  it("the CRI object form: uid, name, gid", () => {
    expect(resolveUser({ uid: 1000 }, PASSWD, GROUP).name).toBe("app");
    expect(resolveUser({ name: "app", gid: 9 }, PASSWD, GROUP)).toMatchObject({
      uid: 1000,
      gid: 9,
    });
    expect(resolveUser({}, PASSWD, GROUP).uid).toBe(0);
  });
  it("explicit supplemental groups come last, without duplicates", () => {
    expect(resolveUser("app", PASSWD, GROUP, [5000, 2000]).additionalGids).toEqual([
      1000,
      2000,
      10,
      5000,
    ]);
  });
  it("a missing name is an invalid-argument error with the runc-style message", () => {
    const e = err(() => resolveUser("nobody", PASSWD, GROUP));
    expect(isKind(e, "invalid-argument")).toBe(true);
    expect(e.message).toBe("unable to find user nobody: no matching entries in passwd file");
    expect(err(() => resolveUser("app", undefined, undefined)).message).toContain(
      "unable to find user app",
    );
    expect(err(() => resolveUser("app:nogroup", PASSWD, GROUP)).message).toBe(
      "unable to find group nogroup: no matching entries in group file",
    );
  });
  it("malformed requests name what is wrong", () => {
    expect(err(() => resolveUser("app:", PASSWD, GROUP)).message).toContain("empty group");
    expect(err(() => resolveUser(":1", PASSWD, GROUP)).message).toContain("empty user");
    expect(err(() => resolveUser({ uid: -1 }, PASSWD, GROUP)).message).toContain("user.uid");
    expect(err(() => resolveUser("99999999999", PASSWD, GROUP)).message).toContain("uid");
    expect(err(() => resolveUser("app", PASSWD, GROUP, [-3])).message).toContain(
      "supplementalGroups[0]",
    );
  });
});
