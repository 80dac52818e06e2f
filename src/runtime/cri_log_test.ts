import { describe, expect, it } from "../testing/bdd.ts";
import { parseCriLogLine } from "./cri_log.ts";

describe("CRI log lines", () => {
  it("parse into time, stream, full or partial, and content (a carriage return included)", () => {
    expect(parseCriLogLine("2024-01-01T00:00:00.000000000Z stdout F hello")).toEqual({
      time: "2024-01-01T00:00:00.000000000Z",
      stream: "stdout",
      partial: false,
      content: "hello",
    });
    expect(parseCriLogLine("2024-01-01T00:00:00Z stderr P 50%\r")?.content).toBe("50%\r");
    expect(parseCriLogLine("2024-01-01T00:00:00Z stdout F")?.content).toBe("");
    expect(parseCriLogLine("not a log line")).toBeUndefined();
  });
});
