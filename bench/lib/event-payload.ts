/**
 * Payloads of the events benchmark (`Orders.order_placed`, an `Order`) and the
 * check every consumed event must pass. Each event carries its sequence
 * number (the first item's quantity, minus one), so the consumer can tell a
 * missing, duplicated or wrong event; a failed check aborts the run.
 */
import type { Item, Order, Region } from "../../generated/orders/types.js";

/** Payload sizes of the events benchmark: one item, or about 1 KB of JSON. */
export type EventSize = "small" | "1KB";

const REGIONS: readonly Region[] = ["eu", "us", "apac"];

/** The items after the first one, shared by every event of a size (the first carries the sequence number). */
const TAIL: Record<EventSize, readonly Item[]> = {
  small: [],
  "1KB": Array.from({ length: 23 }, (_, k) => ({ sku: `sku-${String(k + 1).padStart(4, "0")}-abcdefgh`, quantity: k + 1 })),
};

/** The event with sequence number `seq` (0-based). */
export function orderEvent(seq: number, size: EventSize): Order {
  return { orderId: `o-${seq}`, region: REGIONS[seq % 3]!, items: [{ sku: "sku-0000-first", quantity: seq + 1 }, ...TAIL[size]] };
}

/** Its routing key, as the contract's `orders.{region}.placed` gives it. */
export function orderRoutingKey(order: Order): string {
  return `orders.${order.region}.placed`;
}

/** JSON bytes of an event of each size (with a 5-digit sequence number). */
export const EVENT_BYTES: Record<EventSize, number> = {
  small: Buffer.byteLength(JSON.stringify(orderEvent(12345, "small"))),
  "1KB": Buffer.byteLength(JSON.stringify(orderEvent(12345, "1KB"))),
};

const LONG_TAIL = TAIL["1KB"];
const LAST = LONG_TAIL[LONG_TAIL.length - 1]!;

/**
 * Checks consumed events: each must be a well-formed event of either size
 * and seen once. After `count` events, all sequence numbers below `count`
 * were seen exactly once (none is out of range, none twice).
 */
export class EventCheck {
  #seen = new Uint8Array(1 << 16);
  /** Events consumed and checked so far. */
  count = 0;
  #target = Infinity;
  #onTarget: (() => void) | undefined;

  /** Calls `done` once `n` events were consumed (at once if they were). */
  whenCount(n: number, done: () => void): void {
    if (this.count >= n) return done();
    this.#target = n;
    this.#onTarget = done;
  }

  /** Checks one consumed payload; throws (which aborts the run) if it is wrong. */
  check(payload: unknown): void {
    const p = payload as Order | null;
    const seq = (p?.items?.[0]?.quantity ?? 0) - 1;
    const n = p?.items?.length;
    const last = p?.items?.[LONG_TAIL.length];
    if (
      !(seq >= 0) ||
      p!.orderId !== `o-${seq}` ||
      p!.region !== REGIONS[seq % 3] ||
      (n !== 1 && (n !== LONG_TAIL.length + 1 || last?.sku !== LAST.sku || last.quantity !== LAST.quantity))
    ) {
      throw new Error(`wrong event consumed: ${JSON.stringify(payload).slice(0, 200)}`);
    }
    while (seq >= this.#seen.length) {
      const grown = new Uint8Array(this.#seen.length * 2);
      grown.set(this.#seen);
      this.#seen = grown;
    }
    if (this.#seen[seq] !== 0) throw new Error(`event ${seq} consumed twice`);
    this.#seen[seq] = 1;
    if (++this.count >= this.#target) {
      const done = this.#onTarget!;
      this.#target = Infinity;
      this.#onTarget = undefined;
      done();
    }
  }

  /** Throws unless exactly the events 0 .. total-1 were consumed. */
  complete(total: number): void {
    if (this.count !== total) throw new Error(`consumed ${this.count} events, expected ${total}`);
    for (let i = 0; i < total; i++) if (this.#seen[i] !== 1) throw new Error(`event ${i} never consumed`);
  }
}
