/**
 * Declaring the durable queues warren owns (service queues, consumer-group
 * queues, dead-letter queues), of the type their owner asked for.
 */
import type { QueueType } from "../core/options.js";
import type { WireChannel } from "./channel-source.js";

/**
 * Declares `queue`, durable, of `type`. The broker refuses a queue that exists
 * with other arguments (PRECONDITION_FAILED, which also closes the channel);
 * that error is rethrown naming `what`, the queue and the type asked for.
 */
export async function declareDurableQueue(channel: WireChannel, what: string, queue: string, type: QueueType): Promise<void> {
  try {
    // No x-queue-type for classic: a queue declared before this option existed has none, and must stay equivalent.
    await channel.declareQueue(queue, type === "quorum" ? { durable: true, arguments: { "x-queue-type": "quorum" } } : { durable: true });
  } catch (err) {
    if ((err as { code?: unknown }).code !== 406) throw err;
    const detail = /PRECONDITION_FAILED - ([^"]*)/.exec((err as Error).message)?.[1] ?? (err as Error).message;
    throw new Error(`warren: ${what}: queue "${queue}" exists with other arguments than a ${type} queue (${detail}); use the queueType it was declared with, or delete the queue`, { cause: err });
  }
}
