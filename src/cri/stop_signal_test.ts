import { describe, expect, it } from "../testing/bdd.ts";
import { Signal } from "../gen/runtime/v1/api.ts";
import { criSignal, criSignalName } from "./stop_signal.ts";
import { signalNumber } from "../runtime/runc.ts";

describe("CRI stop signals", () => {
  it("names what runc takes, none for RUNTIME_DEFAULT", () => {
    expect(criSignalName(Signal.RUNTIME_DEFAULT)).toBeUndefined();
    expect(criSignalName(Signal.SIGUSR1)).toBe("SIGUSR1");
    expect(criSignalName(Signal.SIGQUIT)).toBe("SIGQUIT");
    expect(criSignalName(Signal.SIGRTMINPLUS3)).toBe("SIGRTMIN+3");
    expect(criSignalName(Signal.SIGRTMAXMINUS2)).toBe("SIGRTMAX-2");
    expect(signalNumber(criSignalName(Signal.SIGUSR2)!)).toBe(12);
  });

  it("maps names back", () => {
    expect(criSignal("SIGTERM")).toBe(Signal.SIGTERM);
    expect(criSignal("term")).toBe(Signal.SIGTERM);
    expect(criSignal("SIGRTMIN+3")).toBe(Signal.SIGRTMINPLUS3);
    expect(criSignal("")).toBe(Signal.RUNTIME_DEFAULT);
    expect(criSignal("SIGNOPE")).toBe(Signal.RUNTIME_DEFAULT);
  });
});

describe("real-time stop signals", () => {
  it("are numbered as glibc's programs see them", () => {
    expect(signalNumber(criSignalName(Signal.SIGRTMINPLUS3)!)).toBe(37);
    expect(signalNumber(criSignalName(Signal.SIGRTMAXMINUS2)!)).toBe(62);
    expect(signalNumber("RTMIN")).toBe(34);
  });
});
