import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Deadlines, type Expiring } from "../../src/rpc/deadlines.js";

/** An item due `timeoutMs` from now that records when it expired (fake time). */
function item(name: string, timeoutMs: number, log: string[]): Expiring & { timeoutMs: number } {
  return {
    timeoutMs,
    deadline: Date.now() + timeoutMs,
    expire: () => void log.push(`${name}@${Date.now() - 1_000_000}`),
    deadlinePrev: undefined,
    deadlineNext: undefined,
    deadlineList: undefined,
  };
}

describe("Deadlines", () => {
  let log: string[];
  let d: Deadlines<Expiring>;
  const add = (name: string, timeoutMs: number) => {
    const it = item(name, timeoutMs, log);
    d.add(it, timeoutMs);
    return it;
  };

  beforeEach(() => {
    vi.useFakeTimers();
    vi.setSystemTime(1_000_000);
    log = [];
    d = new Deadlines();
  });
  afterEach(() => vi.useRealTimers());

  it("expires each item at its deadline, across timeouts, in deadline order", () => {
    add("c", 250);
    add("a", 50);
    vi.advanceTimersByTime(20);
    add("b", 81); // due at 101
    vi.advanceTimersByTime(49 - 20);
    expect(log).toEqual([]);
    vi.advanceTimersByTime(1_000);
    expect(log).toEqual(["a@50", "b@101", "c@250"]);
    expect(d.size).toBe(0);
  });

  it("never expires a removed item, wherever it sits in its list", () => {
    const first = add("first", 100);
    add("second", 100);
    const middle = add("middle", 100);
    add("last", 100);
    d.delete(first);
    d.delete(middle);
    d.delete(middle); // twice is harmless
    expect(d.size).toBe(2);
    vi.advanceTimersByTime(200);
    expect(log).toEqual(["second@100", "last@100"]);
  });

  it("uses one timer per distinct timeout, however many items, and none once all are gone", () => {
    for (let i = 0; i < 1_000; i++) {
      add(`x${i}`, 5_000);
      vi.advanceTimersByTime(1);
    }
    add("short", 10);
    expect(vi.getTimerCount()).toBe(2);
    vi.advanceTimersByTime(10_000);
    expect(log).toHaveLength(1_001);
    expect(log[0]).toBe("short@1010");
    expect(log.at(-1)).toBe("x999@5999");
    expect(vi.getTimerCount()).toBe(0);
  });

  it("keeps expiring on time when the head settles first (its timer re-arms for the next)", () => {
    const head = add("head", 100);
    vi.advanceTimersByTime(30);
    add("next", 100); // due at 130
    d.delete(head);
    vi.advanceTimersByTime(99);
    expect(log).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(log).toEqual(["next@130"]);
  });

  it("clear() drops everything and stops the timers", () => {
    add("a", 100);
    add("b", 200);
    d.clear();
    vi.advanceTimersByTime(1_000);
    expect(log).toEqual([]);
    expect(vi.getTimerCount()).toBe(0);
    expect(d.size).toBe(0);
  });
});
