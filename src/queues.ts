/**
 * Declaring the durable queues warren owns (service queues, consumer-group
 * queues, dead-letter queues), of the type their owner asked for.
 */
import type { Channel } from "amqplib";

/** How a durable queue is declared when it does not exist yet. */
export type QueueType = "classic" | "quorum";

/** Checks a `queueType` option; throws a TypeError naming `what` for anything else. */
export function checkQueueType(what: string, type: unknown): QueueType {
  if (type === undefined) return "classic";
  if (type === "classic" || type === "quorum") return type;
  throw new TypeError(`warren: ${what}: queueType must be "classic" or "quorum", got ${JSON.stringify(type)}`);
}

/**
 * Declares `queue`, durable, of `type`. The broker refuses a queue that exists
 * with other arguments (PRECONDITION_FAILED, which also closes the channel);
 * that error is rethrown naming `what`, the queue and the type asked for.
 */
export async function declareDurableQueue(channel: Channel, what: string, queue: string, type: QueueType): Promise<void> {
  try {
    // No x-queue-type for classic: a queue declared before this option existed has none, and must stay equivalent.
    await channel.assertQueue(queue, type === "quorum" ? { durable: true, arguments: { "x-queue-type": "quorum" } } : { durable: true });
  } catch (err) {
    if ((err as { code?: unknown }).code !== 406) throw err;
    const detail = /PRECONDITION_FAILED - ([^"]*)/.exec((err as Error).message)?.[1] ?? (err as Error).message;
    throw new Error(`warren: ${what}: queue "${queue}" exists with other arguments than a ${type} queue (${detail}); use the queueType it was declared with, or delete the queue`, { cause: err });
  }
}
