/**
 * Whether anyone serves a queue, so that a call to a service whose queue
 * exists but has no consumer (every server down) fails with `no_server` at
 * once instead of waiting for its whole timeout. The answer comes from a
 * passive queue declare on a channel of its own and is kept per queue:
 * a call reads the cache (a Map lookup); a known answer older than
 * {@link FRESH_MS} is checked again in the background while calls go on, except
 * that a stale "nobody" is checked again before a call is failed with it.
 *
 * The same passive declare tells a server whether a request's caller is still
 * there ({@link requesterAlive}).
 */
import type { ChannelSource, WireChannel } from "../amqp/channel-source.js";

/** How long an answer is taken as current. */
export const FRESH_MS = 1000;

interface Known {
  /** Consumers on the queue; -1: the queue does not exist or could not be checked (the call goes out; `mandatory` tells). */
  readonly consumers: number;
  readonly at: number;
}

/** What a passive declare told about a queue: its consumers, `missing` (404), or `unknown` (any other failure). */
export type Probed = number | "missing" | "unknown";

/**
 * Passive queue declares on a channel of their own, opened on first use and
 * again after a failed declare closes it (a 404 or 405 closes the channel).
 */
export class QueueProbe {
  #channel: Promise<WireChannel> | undefined;

  constructor(private readonly source: ChannelSource) {}

  /** Consumers on `queue`, `missing` when the broker says it does not exist, `unknown` for anything else. Never rejects. */
  async probe(queue: string): Promise<Probed> {
    try {
      const channel = await this.#open();
      return (await channel.checkQueue(queue)).consumerCount;
    } catch (err) {
      return (err as { code?: unknown } | null)?.code === 404 ? "missing" : "unknown";
    }
  }

  #open(): Promise<WireChannel> {
    this.#channel ??= this.source.open("plain").then(
      (channel) => {
        channel.onClose(() => (this.#channel = undefined));
        return channel;
      },
      (err: unknown) => {
        this.#channel = undefined;
        throw err;
      },
    );
    return this.#channel;
  }

  /** Closes the probing channel. */
  async close(): Promise<void> {
    const channel = this.#channel;
    this.#channel = undefined;
    if (channel !== undefined) await (await channel.catch(() => undefined))?.close();
  }
}

/** The consumer counts of the queues one client calls; see the module comment. */
export class Presence {
  readonly #known = new Map<string, Known>();
  readonly #checking = new Map<string, Promise<number>>();
  readonly #probe: QueueProbe;

  constructor(source: ChannelSource) {
    this.#probe = new QueueProbe(source);
  }

  /**
   * Consumers on `queue` as far as known without waiting: a number (possibly
   * stale, then refreshed in the background), -1 when the queue is missing or
   * cannot be checked, or `undefined` when nothing current is known (check first).
   */
  known(queue: string, now: number): number | undefined {
    const known = this.#known.get(queue);
    if (known === undefined) return undefined;
    if (now - known.at < FRESH_MS) return known.consumers;
    if (known.consumers === 0) return undefined; // never fail a call on a stale "nobody"
    void this.check(queue);
    return known.consumers;
  }

  /** Checks `queue` now (one check per queue at a time); resolves with its consumers, or -1. Never rejects. */
  check(queue: string): Promise<number> {
    let pending = this.#checking.get(queue);
    if (pending === undefined) {
      pending = this.#ask(queue).finally(() => this.#checking.delete(queue));
      this.#checking.set(queue, pending);
    }
    return pending;
  }

  async #ask(queue: string): Promise<number> {
    // A missing queue, no permission, a lost connection: unknown (-1), the call goes out and `mandatory` tells.
    const probed = await this.#probe.probe(queue);
    const consumers = typeof probed === "number" ? probed : -1;
    this.#known.set(queue, { consumers, at: Date.now() });
    return consumers;
  }

  /** Closes the checking channel. */
  close(): Promise<void> {
    return this.#probe.close();
  }
}

/**
 * Whether the caller of a request still waits on its `reply_to`, as the
 * broker knows it: a direct reply-to address answers a passive declare while
 * the caller's channel is open (404 once it is gone); an exclusive callback
 * queue answers 405 (locked: it exists) while the caller's connection is up,
 * 404 once it is gone. Anything else (no permission, a lost connection) is
 * taken as "still there", so that work is never abandoned on a guess.
 * Costs one round trip to the broker per question, on a channel opened on
 * first use.
 */
export async function requesterAlive(probe: QueueProbe, replyTo: string): Promise<boolean> {
  if (replyTo === "") return false;
  return (await probe.probe(replyTo)) !== "missing";
}
