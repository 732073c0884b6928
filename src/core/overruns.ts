/**
 * Handlers that outlast their delivery: the pure pieces servers and
 * subscriptions use so that a long handler neither loses its outcome nor runs
 * twice when the broker takes the message back, and so that a server need not
 * meet the broker's consumer timeout at all where it can tell it would (see
 * docs/FAILURES.md#long-handlers-and-consumer_timeout).
 *
 * RabbitMQ checks each channel's oldest unacknowledged delivery every
 * `channel_tick_interval` (60 s by default) and closes the whole channel once
 * it is older than `consumer_timeout`; every delivery unacknowledged on that
 * channel goes back to the queue, marked redelivered.
 */

/** Keys remembered at most; the oldest are forgotten first. */
const CAPACITY = 10_000;

/** A bounded set of request keys, oldest forgotten first. */
export class RecentKeys {
  readonly #keys = new Set<string>();

  /** Remembers `key`. */
  add(key: string): void {
    this.#keys.delete(key);
    this.#keys.add(key);
    if (this.#keys.size > CAPACITY) this.#keys.delete(this.#keys.values().next().value!);
  }

  /** How many keys are remembered. */
  get size(): number {
    return this.#keys.size;
  }

  /** Forgets `key`; true when it was remembered. */
  take(key: string): boolean {
    return this.#keys.delete(key);
  }
}

/** How often a server looks for requests to settle early: often enough to act well inside the broker's timeout, at most once a second. */
export function watchPeriodMs(consumerTimeoutMs: number | undefined): number {
  return consumerTimeoutMs === undefined ? 1000 : Math.max(50, Math.min(1000, Math.floor(consumerTimeoutMs / 10)));
}

/**
 * How long a request may stay unacknowledged before a server with
 * `consumerTimeoutMs` set acknowledges it early: the broker's timeout less a
 * margin (a quarter of it, at most 10 s) that covers the watch period, a busy
 * event loop and the ack's way to the broker.
 */
export function earlySettleAfterMs(consumerTimeoutMs: number): number {
  return consumerTimeoutMs - Math.min(consumerTimeoutMs / 4, 10_000);
}

/** `ms` as seconds with one decimal, for log lines. */
export function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}
