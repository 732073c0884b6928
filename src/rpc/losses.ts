/**
 * Poison-request accounting for servers. When a server's channel closes, every
 * request delivered on it and not yet finished goes back to the queue; if one
 * of them is what closes the channel (a reply the broker answers by closing
 * the connection, a handler that brings the process's connection down), it
 * would run, and cost a connection, again and again. The ledger counts, per
 * request, the losses it was unfinished at (or finished only just before:
 * the broker may close the connection on a reply before it reads the ack
 * sent behind it); a server refuses to run a redelivered request once that
 * count reaches {@link MAX_LOSSES}.
 */

/** Channel losses a request may be unfinished at before a redelivery of it is no longer run. Two: one loss may be a coincidence (a network fault, a broker restart). */
export const MAX_LOSSES = 2;

/** Requests remembered at most; the oldest are forgotten first. */
const CAPACITY = 10_000;

/** Loss counts by request key, bounded; see the module comment. */
export class LossLedger {
  readonly #counts = new Map<string, number>();

  /** Counts one loss against each request. */
  record(requests: Iterable<{ readonly key: string }>): void {
    for (const { key } of requests) {
      const count = (this.#counts.get(key) ?? 0) + 1;
      this.#counts.delete(key); // re-inserted last: most recently lost
      this.#counts.set(key, count);
      if (this.#counts.size > CAPACITY) this.#counts.delete(this.#counts.keys().next().value!);
    }
  }

  /** Losses counted against `key`. */
  count(key: string): number {
    return this.#counts.get(key) ?? 0;
  }
}

/** A request's identity across redeliveries: the broker redelivers the same `correlation_id` and `reply_to`. */
export function requestKey(correlationId: string | undefined, replyTo: string | undefined): string {
  return `${correlationId ?? ""}\u0000${replyTo ?? ""}`;
}

/** How many of the last finished requests of a channel count as "only just acked". */
const RECENT = 64;

/** The last {@link RECENT} requests finished on one channel (a ring; the key is built only when asked for). */
export class RecentRequests {
  readonly #ids: (string | undefined)[] = [];
  readonly #replyTos: (string | undefined)[] = [];
  #next = 0;

  /** Records a finished request. */
  add(correlationId: string | undefined, replyTo: string | undefined): void {
    this.#ids[this.#next] = correlationId;
    this.#replyTos[this.#next] = replyTo;
    this.#next = (this.#next + 1) % RECENT;
  }

  /** The recorded requests, as `{ key }` entries for {@link LossLedger.record}. */
  keys(): { key: string }[] {
    return this.#ids.map((id, i) => ({ key: requestKey(id, this.#replyTos[i]) }));
  }
}
