import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Deadlines } from "../../src/deadlines.js";

/** An item that records when it expired (fake time). */
function item(name: string, log: string[]) {
  return { expire: () => log.push(`${name}@${Date.now()}`) };
}

describe("Deadlines", () => {
  beforeEach(() => {
    vi.useFakeTimers();
    vi.setSystemTime(1_000_000);
  });
  afterEach(() => vi.useRealTimers());

  it("expires each item at or after its deadline, at most one resolution late, in deadline order", () => {
    const log: string[] = [];
    const d = new Deadlines(10);
    d.add(item("c", log), 1_000_250);
    d.add(item("a", log), 1_000_050);
    d.add(item("b", log), 1_000_101);
    vi.advanceTimersByTime(49);
    expect(log).toEqual([]);
    vi.advanceTimersByTime(1_000);
    expect(log).toEqual(["a@1000050", "b@1000110", "c@1000250"]);
    expect(d.size).toBe(0);
  });

  it("never expires a removed item, and keeps expiring the others of its bucket", () => {
    const log: string[] = [];
    const d = new Deadlines(10);
    const a = item("a", log);
    const keyA = d.add(a, 1_000_100);
    d.add(item("b", log), 1_000_100);
    d.delete(a, keyA);
    vi.advanceTimersByTime(200);
    expect(log).toEqual(["b@1000100"]);
  });

  it("moves the timer earlier for an earlier deadline and skips emptied buckets", () => {
    const log: string[] = [];
    const d = new Deadlines(10);
    const late = item("late", log);
    const key = d.add(late, 1_030_000);
    d.add(item("early", log), 1_000_020);
    vi.advanceTimersByTime(20);
    expect(log).toEqual(["early@1000020"]);
    d.delete(late, key);
    d.add(item("next", log), 1_040_000);
    vi.advanceTimersByTime(50_000);
    expect(log).toEqual(["early@1000020", "next@1040000"]);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("handles many calls with one timer", () => {
    const log: string[] = [];
    const d = new Deadlines(10);
    for (let i = 0; i < 1_000; i++) d.add(item(String(i), log), 1_000_000 + ((i * 7919) % 5_000));
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(5_010);
    expect(log).toHaveLength(1_000);
    const times = log.map((l) => Number(l.split("@")[1]));
    expect(times).toEqual([...times].sort((x, y) => x - y));
  });

  it("clear() drops everything and stops the timer", () => {
    const log: string[] = [];
    const d = new Deadlines(10);
    d.add(item("a", log), 1_000_100);
    d.clear();
    vi.advanceTimersByTime(1_000);
    expect(log).toEqual([]);
    expect(vi.getTimerCount()).toBe(0);
  });
});
