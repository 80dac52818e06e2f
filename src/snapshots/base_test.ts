import { describe, expect, it } from "../testing/bdd.ts";
import { diskUsage, USAGE_YIELD_EVERY } from "./base.ts";

describe("diskUsage", () => {
  it("counts allocated bytes and inodes, a hardlinked inode once, symlinks not followed", async () => {
    const dir = await Deno.makeTempDir();
    try {
      Deno.mkdirSync(`${dir}/d/e`, { recursive: true });
      Deno.writeFileSync(`${dir}/d/f`, new Uint8Array(8192).fill(1));
      Deno.linkSync(`${dir}/d/f`, `${dir}/g`);
      Deno.symlinkSync("/usr", `${dir}/usr`); // followed, it would count the whole /usr
      const u = await diskUsage(dir);
      expect(u.inodes).toBe(5); // dir, d, d/e, f (= g), usr
      const blocks = (p: string) => (Deno.lstatSync(p).blocks ?? 0) * 512;
      expect(u.size).toBe(
        [dir, `${dir}/d`, `${dir}/d/e`, `${dir}/d/f`, `${dir}/usr`].reduce(
          (s, p) => s + blocks(p),
          0,
        ),
      );
      expect(await diskUsage(`${dir}/missing`)).toEqual({ size: 0, inodes: 0 });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });

  it("lets other work run while it walks a large tree", async () => {
    const dir = await Deno.makeTempDir();
    try {
      for (let i = 0; i < USAGE_YIELD_EVERY * 2 + 10; i++) {
        Deno.writeFileSync(`${dir}/f${i}`, new Uint8Array(0));
      }
      let fired = false;
      setTimeout(() => fired = true, 0);
      const u = await diskUsage(dir);
      // Checked as soon as the walk is done: only a walk that yielded let the timer run.
      expect(fired).toBe(true);
      expect(u.inodes).toBe(USAGE_YIELD_EVERY * 2 + 11);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
});
