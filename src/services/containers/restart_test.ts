import { describe, expect, it } from "../../testing/bdd.ts";
import { Exchange } from "../../events/exchange.ts";
import { createLogger } from "../../log/logger.ts";
import {
  parseRestartPolicy,
  RESTART_COUNT_LABEL,
  RESTART_POLICY_LABEL,
  RestartManager,
  USER_STOPPED_LABEL,
} from "./restart.ts";
import type { ContainerService } from "./service.ts";
import { NotFoundError } from "../../errdefs/errors.ts";

/** The part of the container service the manager uses, over one in-memory container. */
function fakeService(labels: Record<string, string>) {
  const starts: number[] = [];
  let exists = true;
  const svc = {
    get: (_ns: string, id: string) => {
      if (!exists) throw new NotFoundError(`container "${id}"`);
      return { id, labels };
    },
    all: () => [{ namespace: "default", container: { id: "c", labels } }],
    taskState: () => Promise.resolve({ status: "stopped", exitCode: 3 }),
    setDaemonLabels: (_ns: string, _id: string, l: Record<string, string>) => {
      for (const [k, v] of Object.entries(l)) v ? (labels[k] = v) : delete labels[k];
    },
    start: () => {
      starts.push(Date.now());
      return Promise.resolve({ pid: 1 });
    },
  };
  return { svc: svc as unknown as ContainerService, starts, remove: () => (exists = false) };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("restart manager", () => {
  it("parses docker's policies and refuses others, naming them", () => {
    expect(parseRestartPolicy("")).toEqual({ name: "no", text: "no" });
    expect(parseRestartPolicy("always").name).toBe("always");
    expect(parseRestartPolicy("unless-stopped").name).toBe("unless-stopped");
    expect(parseRestartPolicy("on-failure")).toEqual({ name: "on-failure", text: "on-failure" });
    expect(parseRestartPolicy("on-failure:2")).toEqual({
      name: "on-failure",
      max: 2,
      text: "on-failure:2",
    });
    expect(() => parseRestartPolicy("sometimes")).toThrow(/invalid restart policy "sometimes"/);
    expect(() => parseRestartPolicy("on-failure:x")).toThrow(/on-failure\[:N\]/);
  });

  it("restarts on-failure:N at most N times, with a doubling backoff, never after exit 0", async () => {
    const labels: Record<string, string> = { [RESTART_POLICY_LABEL]: "on-failure:2" };
    const { svc, starts } = fakeService(labels);
    const events = new Exchange();
    const m = new RestartManager(svc, events, createLogger({ level: "error" }));
    m.start();
    try {
      const t0 = Date.now();
      events.publish("default", "/tasks/exit", { containerId: "c", exitStatus: 0 });
      await sleep(250);
      expect(starts.length).toBe(0);
      for (let i = 0; i < 3; i++) {
        events.publish("default", "/tasks/exit", { containerId: "c", exitStatus: 3 });
        await sleep(450);
      }
      expect(starts.length).toBe(2);
      expect(labels[RESTART_COUNT_LABEL]).toBe("2");
      // 100 ms before the first restart, 200 ms before the second.
      expect(starts[0] - t0).toBeGreaterThanOrEqual(350);
    } finally {
      m.stop();
    }
  });

  it("does not restart what the user stopped or removed, also mid-backoff", async () => {
    const labels: Record<string, string> = { [RESTART_POLICY_LABEL]: "always" };
    const { svc, starts, remove } = fakeService(labels);
    const events = new Exchange();
    const m = new RestartManager(svc, events, createLogger({ level: "error" }));
    m.start();
    try {
      events.publish("default", "/tasks/exit", { containerId: "c", exitStatus: 0 });
      labels[USER_STOPPED_LABEL] = "true"; // a kill arrives during the backoff
      await sleep(250);
      expect(starts.length).toBe(0);
      events.publish("default", "/tasks/exit", { containerId: "c", exitStatus: 0 });
      await sleep(250);
      expect(starts.length).toBe(0);
      delete labels[USER_STOPPED_LABEL];
      remove();
      events.publish("default", "/tasks/exit", { containerId: "c", exitStatus: 0 });
      await sleep(250);
      expect(starts.length).toBe(0);
    } finally {
      m.stop();
    }
  });

  it("at daemon start brings back always even after a user stop, unless-stopped not", async () => {
    for (const [policy, want] of [["always", 1], ["unless-stopped", 0]] as const) {
      const labels: Record<string, string> = {
        [RESTART_POLICY_LABEL]: policy,
        [USER_STOPPED_LABEL]: "true",
      };
      const { svc, starts } = fakeService(labels);
      const m = new RestartManager(svc, new Exchange(), createLogger({ level: "error" }));
      try {
        await m.recover();
        await sleep(250);
        expect({ policy, starts: starts.length }).toEqual({ policy, starts: want });
      } finally {
        m.stop();
      }
    }
  });
});
