/** src/rpc/losses.ts: the loss ledger, the recent-requests ring and the unfinished-requests index a server counts poison requests with. */
import { describe, expect, it } from "vitest";
import { SlotIndex } from "../../src/core/slot-index.js";
import { LossLedger, MAX_LOSSES, RecentRequests, requestKey } from "../../src/rpc/losses.js";

describe("SlotIndex", () => {
  it("returns exactly the requests not yet finished, whatever the order, with slow ones outliving thousands of fast ones", () => {
    const index = new SlotIndex<{ tag: number }>((r) => r.tag);
    const slow = [{ tag: 1 }, { tag: 2 }];
    for (const r of slow) index.add(r);
    const fast: { tag: number }[] = [];
    for (let tag = 3; tag < 5000; tag++) {
      const r = { tag };
      index.add(r);
      fast.push(r);
      if (fast.length > 40) index.delete(fast.splice(tag % 7, 1)[0]!); // finish out of order
    }
    const left = index.drain().map((r) => r.tag).sort((a, b) => a - b);
    expect(left).toEqual([1, 2, ...fast.map((r) => r.tag)].sort((a, b) => a - b));
    expect(index.drain()).toEqual([]);
  });
});

describe("LossLedger and RecentRequests", () => {
  it("counts losses per request, and remembers the last 64 finished requests of a channel", () => {
    const ledger = new LossLedger();
    const recent = new RecentRequests();
    for (let i = 0; i < 100; i++) recent.add(`c${i}`, "reply");
    const keys = recent.keys().map((k) => k.key);
    expect(keys).toHaveLength(64);
    expect(keys).toContain(requestKey("c99", "reply"));
    expect(keys).not.toContain(requestKey("c35", "reply"));
    for (let loss = 0; loss < MAX_LOSSES; loss++) ledger.record([{ key: requestKey("c99", "reply") }]);
    expect(ledger.count(requestKey("c99", "reply"))).toBe(MAX_LOSSES);
    expect(ledger.count(requestKey("c98", "reply"))).toBe(0);
  });
});
