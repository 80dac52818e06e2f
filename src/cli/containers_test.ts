import { describe, expect, it } from "../testing/bdd.ts";
import { containerStatus, decodeCriLog, parseVolume, startFailureExitCode } from "./containers.ts";
import { UsageError } from "./usage_error.ts";

describe("run's helpers", () => {
  it("gives docker's 127 and 126 only for the command itself, as runc and crun word it", () => {
    const runc = "runc create failed: unable to start container process: ";
    expect(startFailureExitCode(`${runc}exec: "nosuch": executable file not found in $PATH`))
      .toBe(127);
    expect(startFailureExitCode(`${runc}exec: "/nope": stat /nope: no such file or directory`))
      .toBe(127);
    expect(startFailureExitCode(`${runc}exec: "/etc/passwd": permission denied`)).toBe(126);
    expect(startFailureExitCode("executable file `nosuch` not found in $PATH: No such file"))
      .toBe(127);
    // A mount source that is missing is not a missing command.
    expect(
      startFailureExitCode(
        `${runc}error during container init: error mounting "/n" to rootfs at "/x": stat /n: no such file or directory`,
      ),
    ).toBeUndefined();
  });

  it("parses -v and refuses what it cannot mount, naming it", () => {
    expect(parseVolume("/a:/b:ro")).toEqual({
      type: "bind",
      source: "/a",
      destination: "/b",
      options: ["rbind", "ro"],
    });
    expect(parseVolume("/a:/b").options).toEqual(["rbind", "rw"]);
    for (const bad of ["/a", "vol:/b", "/a:b", "/a:/b:zz", "/a:/b:ro:x"]) {
      expect(() => parseVolume(bad)).toThrow(UsageError);
    }
  });

  it("spells a container's status as nerdctl does", () => {
    expect(containerStatus(undefined)).toBe("created");
    expect(containerStatus({ status: 2, exitStatus: 0, oomKilled: false })).toBe("running");
    expect(containerStatus({ status: 4, exitStatus: 0, oomKilled: false })).toBe("paused");
    expect(containerStatus({ status: 3, exitStatus: 137, oomKilled: true })).toBe(
      "stopped (exit 137, OOM)",
    );
  });
});

describe("run -p", () => {
  it("parses [IP:]HOST:CTR[/tcp|udp] and refuses the rest, naming it", async () => {
    const { parsePublish } = await import("./containers.ts");
    expect(parsePublish("8080:80")).toEqual({
      hostPort: 8080,
      containerPort: 80,
      protocol: "tcp",
      hostIp: "",
    });
    expect(parsePublish("0.0.0.0:53:5353/udp")).toEqual({
      hostPort: 53,
      containerPort: 5353,
      protocol: "udp",
      hostIp: "0.0.0.0",
    });
    expect(parsePublish("[::1]:8080:80").hostIp).toBe("::1");
    for (const bad of ["80", "0:80", "70000:80", "8080:80/sctp", "host:8080:80"]) {
      expect(() => parsePublish(bad)).toThrow(
        new RegExp(`invalid -p "${bad.replace(/[/.[\]]/g, "\\$&")}"`),
      );
    }
  });
});

describe("logs", () => {
  it("decode back into the program's output for `logs` (the runtime's CRI log parser)", () => {
    const out: string[] = [];
    decodeCriLog(
      [
        "2024-01-01T00:00:00Z stdout P hel",
        "2024-01-01T00:00:00Z stdout F lo",
        "2024-01-01T00:00:01Z stderr F oops",
        "garbage",
        "",
      ].join("\n"),
      (stream, text) => out.push(`${stream}:${text}`),
    );
    expect(out).toEqual(["stdout:hel", "stdout:lo\n", "stderr:oops\n"]);
  });
});
