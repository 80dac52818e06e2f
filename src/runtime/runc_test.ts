import {
  afterAll,
  beforeAll,
  describe,
  expect,
  isEmulated,
  isRoot,
  it,
  ROOT_REASON,
} from "../testing/bdd.ts";
import { Runc, runtimeError, runtimeMessage, signalName, signalNumber } from "./runc.ts";
import { errorKind } from "../errdefs/errors.ts";

describe("runc helpers", () => {
  it("parses signals by name and number", () => {
    expect(signalNumber("SIGTERM")).toBe(15);
    expect(signalNumber("term")).toBe(15);
    expect(signalNumber("9")).toBe(9);
    expect(signalNumber(2)).toBe(2);
    expect(signalName(9)).toBe("SIGKILL");
    expect(() => signalNumber("SIGNOPE")).toThrow(/invalid signal/);
    expect(() => signalNumber(0)).toThrow(/invalid signal/);
  });

  it("takes the last error line of the JSON log, else stderr's msg=", () => {
    const log = [
      '{"level":"warning","msg":"something","time":"t"}',
      '{"level":"error","msg":"first","time":"t"}',
      '{"level":"error","msg":"container does not exist","time":"t"}',
    ].join("\n");
    expect(runtimeMessage(log, "")).toBe("container does not exist");
    expect(runtimeMessage("", 'time="t" level=error msg="exec: \\"/x\\": stat"\n'))
      .toBe('exec: "/x": stat');
    expect(runtimeMessage("", "plain text\n")).toBe("plain text");
  });

  it("maps runtime messages to typed errors naming the container", () => {
    const nf = runtimeError("kill", "c1", "container does not exist");
    expect(errorKind(nf)).toBe("not-found");
    expect(nf.message).toContain('"c1"');
    expect(errorKind(runtimeError("kill", "c1", "container not running"))).toBe(
      "failed-precondition",
    );
    const exec = runtimeError(
      "create",
      "c1",
      'exec: "/nope": stat /nope: no such file or directory',
    );
    expect(errorKind(exec)).toBe("internal");
    expect(exec.message).toContain("/nope");
  });
});

describe.skipIf(!isRoot, ROOT_REASON)("Runc against the real binary", () => {
  let root = "";
  beforeAll(async () => {
    root = await Deno.makeTempDir({ prefix: "k8sc-runc-" });
  });
  afterAll(async () => {
    await Deno.remove(root, { recursive: true }).catch(() => {});
  });

  for (const binary of ["/usr/bin/runc", "/usr/bin/crun"]) {
    it(`${binary}: unknown containers are NotFound with the runtime's message`, async () => {
      try {
        await Deno.stat(binary);
      } catch {
        return; // not installed: nothing to check
      }
      const r = new Runc({ binary, root: `${root}/${binary.split("/").at(-1)}` });
      expect(await r.list()).toEqual([]);
      for (
        const call of [
          () => r.state("ghost"),
          () => r.kill("ghost", "KILL"),
          () => r.delete("ghost"),
        ]
      ) {
        const err = await call().catch((e) => e);
        expect(errorKind(err)).toBe("not-found");
        expect(String(err.message)).toContain('"ghost"');
      }
    });
  }

  // Under qemu-user, glibc's posix_spawn (clone with CLONE_VFORK) runs as a plain fork, so an
  // exec failure cannot reach the parent: the spawn "succeeds" and the child exits 127.
  it.skipIf(isEmulated, "qemu-user: a failed exec shows as exit 127, not a spawn ENOENT")(
    "a missing binary is Unavailable",
    async () => {
      const err = await new Runc({ binary: "/nonexistent/runc", root }).list().catch((e) => e);
      expect(errorKind(err)).toBe("unavailable");
    },
  );
});
