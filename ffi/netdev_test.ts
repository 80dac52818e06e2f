import { afterAll, describe, expect, isRoot, it, ROOT_REASON } from "../src/testing/bdd.ts";
import { isErrno } from "./errno.ts";
import { createNetns, deleteNetns, NETNS_RUN_DIR, withNetns } from "./namespaces.ts";
import { IFF_LOOPBACK, IFF_UP, linkFlags, setLinkUp } from "./netdev.ts";

async function ipLink(netns: string, dev: string): Promise<string> {
  const out = await new Deno.Command("ip", {
    args: ["-n", netns, "-o", "link", "show", dev],
    stdout: "piped",
    stderr: "piped",
  }).output();
  expect(new TextDecoder().decode(out.stderr)).toBe("");
  return new TextDecoder().decode(out.stdout);
}

describe.skipIf(!isRoot, ROOT_REASON)("interface flags", () => {
  const name = `ffi-netdev-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
  const path = `${NETNS_RUN_DIR}/${name}`;
  afterAll(() => {
    if (isRoot) deleteNetns(name);
  });

  it("a new namespace's lo is down; setLinkUp brings it up, as ip sees it", async () => {
    createNetns(name);
    const before = withNetns(path, () => linkFlags("lo"));
    expect({ loopback: (before & IFF_LOOPBACK) !== 0, up: (before & IFF_UP) !== 0 })
      .toEqual({ loopback: true, up: false });
    expect(await ipLink(name, "lo")).not.toMatch(/<[^>]*\bUP\b/);
    withNetns(path, () => setLinkUp("lo"));
    expect(await ipLink(name, "lo")).toMatch(/<LOOPBACK,UP,LOWER_UP>/);
    // Up already: nothing changes, no error.
    withNetns(path, () => setLinkUp("lo"));
    expect(withNetns(path, () => linkFlags("lo")) & IFF_UP).toBe(IFF_UP);
  });

  it("an unknown interface fails with ENODEV naming it; a bad name is refused", () => {
    let caught: unknown;
    try {
      withNetns(path, () => setLinkUp("eth0"));
    } catch (e) {
      caught = e;
    }
    expect(isErrno(caught, "ENODEV")).toBe(true);
    expect(String(caught)).toContain("eth0");
    expect(() => linkFlags("a-name-over-15-bytes")).toThrow(/invalid interface name/);
    expect(() => linkFlags("")).toThrow(/invalid interface name/);
  });
});
