import { describe, expect, it } from "../testing/bdd.ts";
import { createLogger, parseLevel } from "./logger.ts";

describe("logger", () => {
  it("writes one JSON object per line with level, msg and fields", () => {
    const lines: string[] = [];
    const log = createLogger({ level: "info", sink: (l) => lines.push(l) }).child({
      component: "cri",
    });
    log.info("pod started", { pod: "p1", size: 5n });
    const rec = JSON.parse(lines[0]);
    expect(rec).toMatchObject({
      level: "info",
      msg: "pod started",
      component: "cri",
      pod: "p1",
      size: "5",
    });
    expect(Date.parse(rec.time)).not.toBeNaN();
  });
  it("drops lines below the level and serialises errors", () => {
    const lines: string[] = [];
    const log = createLogger({ level: "warn", sink: (l) => lines.push(l) });
    log.info("hidden");
    log.error("failed", { err: new Error("boom") });
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]).err.message).toBe("boom");
  });
  it("rejects an unknown level naming the allowed ones", () => {
    expect(() => parseLevel("loud")).toThrow(/invalid log level "loud": expected one of trace/);
  });
});
