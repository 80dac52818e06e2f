/** Pulls side by side: a blob ref another pull holds is waited for, not an error. */
import { afterAll, beforeAll, describe, expect, it } from "../../testing/bdd.ts";
import { ContentStore } from "../../content/store.ts";
import { digestOf } from "../../content/digest.ts";
import { whileLocked } from "./pull.ts";

describe("whileLocked", () => {
  let dir: string;
  let cs: ContentStore;
  beforeAll(async () => {
    dir = await Deno.makeTempDir();
    cs = new ContentStore(`${dir}/content`);
  });
  afterAll(() => Deno.remove(dir, { recursive: true }));

  const blob = (text: string) => {
    const bytes = new TextEncoder().encode(text);
    return { bytes, desc: { mediaType: "x", digest: digestOf(bytes), size: bytes.length } };
  };

  it("waits while another writer holds the ref; skips once that one committed the blob", async () => {
    const { bytes, desc } = blob("config one");
    const ref = `config-${desc.digest}`;
    const first = await cs.writer(ref, { total: desc.size, expected: desc.digest });
    await expect(cs.writeBlob(ref, bytes)).rejects.toThrow(/is locked/);
    let tries = 0;
    const second = whileLocked(cs, desc, undefined, () => {
      tries++;
      return cs.writeBlob(ref, bytes, { expected: desc.digest, size: desc.size });
    });
    await new Promise((r) => setTimeout(r, 100));
    await first.write(bytes);
    await first.commit({ size: desc.size, digest: desc.digest });
    expect(await second).toBeUndefined();
    expect(tries).toBeGreaterThan(1);
    expect(await cs.exists(desc.digest)).toBe(true);
  });

  it("writes once the other writer gave up without committing", async () => {
    const { bytes, desc } = blob("config two");
    const ref = `config-${desc.digest}`;
    const first = await cs.writer(ref, { total: desc.size, expected: desc.digest });
    const second = whileLocked(
      cs,
      desc,
      undefined,
      () => cs.writeBlob(ref, bytes, { expected: desc.digest, size: desc.size }),
    );
    await new Promise((r) => setTimeout(r, 50));
    await first.close();
    expect(await second).toBe(desc.digest);
  });

  it("gives up when the pull is cancelled; other errors pass through", async () => {
    const { desc } = blob("config three");
    const ref = `config-${desc.digest}`;
    const first = await cs.writer(ref, {});
    const ac = new AbortController();
    const p = whileLocked(cs, desc, ac.signal, () => cs.writer(ref, {}));
    setTimeout(() => ac.abort(new Error("pull cancelled")), 50);
    await expect(p).rejects.toThrow(/pull cancelled/);
    await first.close();
    await expect(whileLocked(cs, desc, undefined, () => Promise.reject(new Error("boom"))))
      .rejects.toThrow("boom");
  });
});
