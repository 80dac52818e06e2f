import { describe, expect, it } from "../testing/bdd.ts";
import { Exchange } from "./exchange.ts";

describe("events exchange", () => {
  it("delivers in order, filtered by namespace and topic", async () => {
    const ex = new Exchange();
    const sub = ex.subscribe({ namespace: "default", topics: ["/tasks/"] });
    ex.publish("other", "/tasks/exit", { id: "x" });
    ex.publish("default", "/images/create", { name: "i" });
    ex.publish("default", "/tasks/start", { id: "a" });
    ex.publish("default", "/tasks/exit", { id: "a", exitStatus: 3 });
    const a = await sub.next();
    const b = await sub.next();
    expect([a.value.topic, b.value.topic]).toEqual(["/tasks/start", "/tasks/exit"]);
    expect(b.value.event).toEqual({ id: "a", exitStatus: 3 });
    await sub.return!();
    expect(ex.subscribers).toBe(0);
  });

  it("ends a stream when its signal aborts and drops a subscriber that falls behind", async () => {
    const ex = new Exchange();
    const ac = new AbortController();
    const sub = ex.subscribe({ signal: ac.signal });
    const pending = sub.next();
    ac.abort();
    expect((await pending).done).toBe(true);
    const slow = ex.subscribe({ maxQueue: 2 });
    for (let i = 0; i < 3; i++) ex.publish("default", "/tasks/exit", { i });
    await slow.next();
    await slow.next();
    await expect(slow.next()).rejects.toThrow(/fell behind by more than 2 events/);
  });
});
