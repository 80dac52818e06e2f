import { afterAll, describe, expect, isRoot, it, ROOT_REASON } from "../src/testing/bdd.ts";
import { isErrno, SyscallError } from "./errno.ts";
import { NSFS_MAGIC, statfs } from "./fs.ts";
import { isMountPoint, MNT_DETACH, mountInfo, umount2 } from "./mount.ts";
import {
  CLONE_NEWNET,
  createNetns,
  deleteNetns,
  listNetns,
  NETNS_RUN_DIR,
  setns,
  withNetns,
} from "./namespaces.ts";

const THREAD_NETNS = "/proc/thread-self/ns/net";

async function ipNetnsList(): Promise<string[]> {
  const out = await new Deno.Command("ip", { args: ["netns", "list"], stdout: "piped" }).output();
  expect(out.success).toBe(true);
  // Lines look like "NAME" or "NAME (id: 3)".
  return new TextDecoder().decode(out.stdout).split("\n").filter((l) => l).map((l) =>
    l.split(" ")[0]
  );
}

describe("network namespaces", () => {
  const name = `ffi-test-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
  const path = `${NETNS_RUN_DIR}/${name}`;
  afterAll(() => {
    if (isRoot) deleteNetns(name);
  });

  it("fails setns on a bad fd with EBADF", () => {
    let caught: unknown;
    try {
      setns(-1, CLONE_NEWNET);
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(SyscallError);
    expect((caught as SyscallError).code).toBe("EBADF");
  });

  it("rejects names that are not plain file names", () => {
    expect(() => createNetns("../etc")).toThrow(TypeError);
    expect(() => deleteNetns("")).toThrow(TypeError);
  });

  it.skipIf(!isRoot, ROOT_REASON)("creates a named netns that ip netns sees", async () => {
    const before = Deno.readLinkSync(THREAD_NETNS);
    expect(createNetns(name)).toBe(path);
    // The thread is back in its own namespace.
    expect(Deno.readLinkSync(THREAD_NETNS)).toBe(before);
    expect(isMountPoint(path)).toBe(true);
    expect(statfs(path).type).toBe(NSFS_MAGIC);
    expect(listNetns()).toContain(name);
    expect(await ipNetnsList()).toContain(name);
    // Like iproute2, the directory is a shared mount.
    const dirEntry = mountInfo().findLast((m) => m.mountPoint === NETNS_RUN_DIR);
    expect(dirEntry?.shared).toBeDefined();
  });

  it.skipIf(!isRoot, ROOT_REASON)("refuses an existing name with EEXIST", () => {
    const before = Deno.readLinkSync(THREAD_NETNS);
    let caught: unknown;
    try {
      createNetns(name);
    } catch (e) {
      caught = e;
    }
    expect(isErrno(caught, "EEXIST")).toBe(true);
    expect(Deno.readLinkSync(THREAD_NETNS)).toBe(before);
    expect(isMountPoint(path)).toBe(true); // the existing one is untouched
  });

  it.skipIf(!isRoot, ROOT_REASON)("has only a loopback interface inside", async () => {
    const out = await new Deno.Command("ip", {
      args: ["netns", "exec", name, "ip", "-o", "link"],
      stdout: "piped",
    }).output();
    expect(out.success).toBe(true);
    const links = new TextDecoder().decode(out.stdout).split("\n").filter((l) => l)
      .map((l) => l.split(":")[1].trim());
    expect(links).toEqual(["lo"]);
  });

  it.skipIf(!isRoot, ROOT_REASON)("runs a function inside with withNetns and comes back", () => {
    const outside = Deno.readLinkSync(THREAD_NETNS);
    const inside = withNetns(path, () => Deno.readLinkSync(THREAD_NETNS));
    expect(inside).not.toBe(outside);
    expect(inside).toMatch(/^net:\[\d+\]$/);
    // The namespace file's inode is the one we were in.
    expect(`net:[${Deno.statSync(path).ino}]`).toBe(inside);
    expect(Deno.readLinkSync(THREAD_NETNS)).toBe(outside);
  });

  it.skipIf(!isRoot, ROOT_REASON)("returns the thread also when the function throws", () => {
    const outside = Deno.readLinkSync(THREAD_NETNS);
    let seen = "";
    expect(() =>
      withNetns(path, () => {
        seen = Deno.readLinkSync(THREAD_NETNS);
        throw new Error("boom");
      })
    ).toThrow("boom");
    expect(seen).not.toBe(outside);
    expect(Deno.readLinkSync(THREAD_NETNS)).toBe(outside);
  });

  it.skipIf(!isRoot, ROOT_REASON)("rejects an async function, after switching back", () => {
    const outside = Deno.readLinkSync(THREAD_NETNS);
    expect(() => withNetns(path, async () => {})).toThrow(/must be synchronous/);
    expect(Deno.readLinkSync(THREAD_NETNS)).toBe(outside);
  });

  it.skipIf(!isRoot, ROOT_REASON)("fails withNetns on a missing path with ENOENT", () => {
    expect(() => withNetns(`${NETNS_RUN_DIR}/${name}-missing`, () => 1)).toThrow(/open .*: ENOENT/);
  });

  it.skipIf(!isRoot, ROOT_REASON)("deletes it, and deleting twice is fine", async () => {
    deleteNetns(name);
    expect(listNetns()).not.toContain(name);
    expect(await ipNetnsList()).not.toContain(name);
    expect(() => Deno.statSync(path)).toThrow(Deno.errors.NotFound);
    deleteNetns(name);
  });

  it.skipIf(!isRoot, ROOT_REASON)("works in a custom directory", async () => {
    const dir = await Deno.makeTempDir({ prefix: "ffi-netns-" });
    try {
      const p = createNetns("a", dir);
      expect(listNetns(dir)).toEqual(["a"]);
      expect(withNetns(p, () => Deno.readLinkSync(THREAD_NETNS))).toBe(
        `net:[${Deno.statSync(p).ino}]`,
      );
      deleteNetns("a", dir);
      expect(listNetns(dir)).toEqual([]);
    } finally {
      deleteNetns("a", dir);
      // createNetns made the directory a (shared) bind mount of itself, like iproute2.
      while (isMountPoint(dir)) {
        umount2(dir, MNT_DETACH);
      }
      await Deno.remove(dir, { recursive: true });
    }
    expect(listNetns(dir)).toEqual([]);
  });
});
