import { describe, expect, it } from "../testing/bdd.ts";
import { DEFAULT_DETACH_KEYS, detachFilter, parseDetachKeys } from "./interactive.ts";
import { UsageError } from "./usage_error.ts";

async function filtered(keys: string, chunks: string[]): Promise<{ out: string; hit: boolean }> {
  let hit = false;
  const src = ReadableStream.from(chunks.map((c) => new TextEncoder().encode(c)));
  const out = await new Response(
    src.pipeThrough(detachFilter(parseDetachKeys(keys), () => (hit = true))),
  ).text();
  return { out, hit };
}

describe("detach keys", () => {
  it("parses docker's syntax", () => {
    expect([...parseDetachKeys(DEFAULT_DETACH_KEYS)]).toEqual([0x10, 0x11]);
    expect([...parseDetachKeys("ctrl-a,x,ctrl-@,ctrl-[,ctrl-_")]).toEqual([1, 120, 0, 27, 31]);
    expect([...parseDetachKeys("CTRL-Z")]).toEqual([26]);
    for (const bad of ["ctrl-1", "ctrl-", "xy", "a,,b", ""]) {
      expect(() => parseDetachKeys(bad)).toThrow(UsageError);
    }
    expect(() => parseDetachKeys("ctrl-p,meta-q")).toThrow(/"meta-q" is not a key/);
  });

  it("passes bytes through, holds a prefix until it is decided, detaches on the sequence", async () => {
    expect(await filtered("ctrl-p,ctrl-q", ["ab", "c"])).toEqual({ out: "abc", hit: false });
    // ctrl-p then something else: the ctrl-p is sent after all.
    expect(await filtered("ctrl-p,ctrl-q", ["a\x10", "b"])).toEqual({ out: "a\x10b", hit: false });
    expect(await filtered("ctrl-p,ctrl-q", ["\x10\x10\x11tail"])).toEqual({
      out: "\x10",
      hit: true,
    });
    expect(await filtered("ctrl-p,ctrl-q", ["a\x10"])).toEqual({ out: "a\x10", hit: false });
    // Split across reads; nothing after the sequence goes on.
    expect(await filtered("x,y,z", ["1x", "y", "z2"])).toEqual({ out: "1", hit: true });
  });
});
