/**
 * The in-process `runc start` handshake against real FIFOs and real writer processes (the
 * whole path through runc itself is in driver_test.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from "../testing/bdd.ts";
import { EXEC_FIFO, speaksExecFifo, startThroughExecFifo } from "./exec_fifo.ts";
import { errorKind } from "../errdefs/errors.ts";
import { mkfifo } from "./conmon.ts";

let root = "";

async function containerDir(id: string): Promise<string> {
  await Deno.mkdir(`${root}/${id}`, { recursive: true });
  return `${root}/${id}`;
}

async function exists(path: string): Promise<boolean> {
  return await Deno.lstat(path).then(() => true, () => false);
}

describe("startThroughExecFifo", () => {
  beforeAll(async () => {
    root = await Deno.makeTempDir({ prefix: "k8sc-exec-fifo-" });
  });
  afterAll(async () => {
    await Deno.remove(root, { recursive: true });
  });

  it("only runc is driven this way", () => {
    expect(speaksExecFifo("/usr/bin/runc")).toBe(true);
    expect(speaksExecFifo("runc")).toBe(true);
    expect(speaksExecFifo("/usr/bin/crun")).toBe(false);
    expect(speaksExecFifo("/opt/runc-wrapper")).toBe(false);
  });

  it("reads what the waiting writer sends, then removes the FIFO", async () => {
    const dir = await containerDir("created");
    mkfifo(`${dir}/${EXEC_FIFO}`);
    // Like runc init: blocks opening the write end, writes one byte, goes on.
    const writer = new Deno.Command("/bin/sh", {
      args: ["-c", `printf 0 > ${dir}/${EXEC_FIFO}; echo released`],
      stdout: "piped",
    }).spawn();
    expect(await startThroughExecFifo(root, "created", writer.pid)).toBe(true);
    const out = await writer.output();
    expect(new TextDecoder().decode(out.stdout)).toBe("released\n");
    expect(await exists(`${dir}/${EXEC_FIFO}`)).toBe(false);
  });

  it("no FIFO (not a created container): false, nothing touched", async () => {
    const dir = await containerDir("running");
    expect(await startThroughExecFifo(root, "running", Deno.pid)).toBe(false);
    expect([...Deno.readDirSync(dir)]).toEqual([]);
  });

  it("a writer that died before opening its end: a named error, not a hang", async () => {
    const dir = await containerDir("dead");
    mkfifo(`${dir}/${EXEC_FIFO}`);
    const gone = new Deno.Command("/bin/true").spawn();
    await gone.status;
    const t0 = performance.now();
    const err = await startThroughExecFifo(root, "dead", gone.pid).catch((e) => e);
    expect(performance.now() - t0).toBeLessThan(5_000);
    expect(errorKind(err)).toBe("failed-precondition");
    expect(String(err)).toMatch(`init process (pid ${gone.pid}) is already dead`);
  });
});
