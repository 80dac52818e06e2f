import { describe, expect, it } from "../testing/bdd.ts";
import { conmonArgs, containerFiles, parseSyncMessage } from "./conmon.ts";

describe("conmon helpers", () => {
  const base = {
    id: "c1",
    cuuid: "u1",
    dir: "/s/ns/c1",
    runtimePath: "/usr/bin/runc",
    runtimeArgs: ["--root=/s/runc/ns", "--log=/s/ns/c1/runc.log"],
    logPath: "/logs/c1.log",
    socketDir: "/s/attach",
    tty: false,
    stdin: false,
    stdinOnce: false,
  };

  it("builds conmon's create command line (API v1, exit dir, persist dir, runtime args)", () => {
    const args = conmonArgs(base);
    const after = (flag: string) => args[args.indexOf(flag) + 1];
    expect(after("--api-version")).toBe("1");
    expect(after("-c")).toBe("c1");
    expect(after("-u")).toBe("u1");
    expect(after("-b")).toBe("/s/ns/c1");
    expect(after("-l")).toBe("k8s-file:/logs/c1.log");
    expect(after("--exit-dir")).toBe(containerFiles("/s/ns/c1").exitDir);
    expect(after("-P")).toBe("/s/ns/c1/conmon.pid");
    expect(args.filter((a) => a === "--runtime-arg").length).toBe(2);
    expect(args).not.toContain("-t");
    expect(args).not.toContain("-i");
  });

  it("maps tty/stdin/stdinOnce onto -t, -i and --leave-stdin-open", () => {
    expect(conmonArgs({ ...base, tty: true })).toContain("-t");
    const keep = conmonArgs({ ...base, stdin: true, stdinOnce: false });
    expect(keep).toContain("-i");
    expect(keep).toContain("--leave-stdin-open");
    const once = conmonArgs({ ...base, stdin: true, stdinOnce: true });
    expect(once).toContain("-i");
    expect(once).not.toContain("--leave-stdin-open");
  });

  it("parses sync messages: a pid, or -1 with the runtime's message", () => {
    expect(parseSyncMessage('{"data": 42}\n')).toEqual({ data: 42 });
    expect(parseSyncMessage('{"data": -1, "message": "runc create failed: x"}\n'))
      .toEqual({ data: -1, message: "runc create failed: x" });
    expect(parseSyncMessage("")).toBeUndefined();
    expect(() => parseSyncMessage('{"pid": 1}\n')).toThrow(/unexpected/);
  });
});
