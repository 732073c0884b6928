/**
 * The bindings of a consumer group's queue follow what its subscriptions ask
 * for. AMQP cannot list a queue's bindings, so warren keeps a record: the
 * group queue `Q` has a durable companion queue `Q.bindings` holding one
 * persistent message, the binding keys (to one exchange) it was last bound
 * with. When a subscription of the group starts (and after each reconnection):
 *
 * - the record matches what it asks for: its keys are bound (again: a
 *   record outlives a group queue or exchange deleted and declared anew,
 *   and binding what is bound changes nothing), the record stays;
 * - no other member is consuming `Q`: the keys it asks for are bound, the
 *   recorded keys it no longer asks for are unbound, and the record replaced —
 *   so `parcels.eu.#` then `parcels.us.#` leaves only the second;
 * - another member is consuming `Q` with other keys: refused, naming both
 *   key sets — members of one group must ask for the same keys (a group is
 *   one queue: the broker cannot give its members different events). Stop
 *   them first (the bindings then follow) or use another group.
 *
 * The work happens on a channel of its own, under a lock (an exclusive queue
 * `Q.bindings-lock`: a second member starting at the same moment waits for
 * the first), and the old record is acknowledged only after the new one is
 * confirmed, so a crash midway leaves a record (the old one) rather than none.
 * A group queue bound before warren kept records has none: its keys are bound
 * and recorded, and keys bound earlier by hand or by an older version stay
 * until unbound by hand.
 */
import type { ChannelSource, WireChannel } from "../amqp/channel-source.js";
import { declareDurableQueue } from "../amqp/queues.js";
import type { QueueType } from "../core/options.js";
import { CONTENT_TYPE, encodeBody } from "../core/protocol.js";

/** The queue holding a group queue's binding record. */
export function bindingsQueueOf(queue: string): string {
  return `${queue}.bindings`;
}

/** What a record says. */
interface BindingRecord {
  readonly exchange: string;
  readonly keys: readonly string[];
}

/** Thrown when a member asks for other keys than the running members of its group. */
export class BindingConflict extends Error {
  override readonly name = "BindingConflict";
}

const LOCK_TRIES = 50;
const LOCK_WAIT_MS = 100;

/**
 * Makes the bindings of group queue `queue` to `exchange` exactly `keys`
 * (see the module comment). Resolves with a line to log when it changed
 * recorded bindings (else `undefined`: unchanged, or a group's first start); rejects with a {@link BindingConflict} when
 * running members ask for other keys, or with the broker's error.
 */
export async function reconcileBindings(
  source: ChannelSource,
  what: string,
  queue: string,
  queueType: QueueType,
  exchange: string,
  keys: readonly string[],
): Promise<string | undefined> {
  const wanted = [...new Set(keys)].sort();
  for (let i = 1; ; i++) {
    const channel = await source.open("confirm");
    try {
      if (await lock(channel, `${queue}.bindings-lock`)) return await reconcile(channel, what, queue, queueType, exchange, wanted);
    } finally {
      await channel.close();
    }
    if (i >= LOCK_TRIES) throw new Error(`${what}: another member of the group held the lock on the bindings of "${queue}" for ${(LOCK_TRIES * LOCK_WAIT_MS) / 1000} s`);
    await new Promise((r) => setTimeout(r, LOCK_WAIT_MS));
  }
}

async function reconcile(channel: WireChannel, what: string, queue: string, queueType: QueueType, exchange: string, wanted: readonly string[]): Promise<string | undefined> {
  const record = bindingsQueueOf(queue);
  await declareDurableQueue(channel, what, record, queueType);
  const held = await channel.get(record);
  const recorded = held === undefined ? undefined : readRecord(held.content);
  const unchanged = recorded !== undefined && recorded.exchange === exchange && same(recorded.keys, wanted);
  if (!unchanged) {
    const { consumerCount } = await channel.checkQueue(queue);
    if (recorded !== undefined && consumerCount > 0) {
      throw new BindingConflict(
        `${what}: the ${consumerCount} running member(s) of this group consume "${queue}" bound to ${describe(recorded)}, but this subscription asks for ${describe({ exchange, keys: wanted })}; ` +
          "members of a group share one queue, so they must ask for the same binding keys: stop the running members first (the bindings then follow the new keys) or subscribe with another group",
      );
    }
  }
  // The record says what was bound, not that it still is (the group queue or the exchange may have been deleted and declared again
  // since): binding is idempotent, so the keys are bound every time.
  for (const key of wanted) await channel.bindQueue(queue, exchange, key);
  if (unchanged) return undefined; // closing the channel requeues the record
  const stale = recorded === undefined ? [] : recorded.keys.filter((k) => recorded.exchange !== exchange || !wanted.includes(k));
  for (const key of stale) await channel.unbindQueue(queue, recorded!.exchange, key);
  await publishRecord(channel, record, { exchange, keys: wanted });
  if (held !== undefined) channel.ack(held);
  if (recorded === undefined) return undefined; // a group's first start (keys bound before warren kept records, if any, stay until unbound by hand)
  return `group queue "${queue}" now bound to ${describe({ exchange, keys: wanted })}${stale.length > 0 ? `; unbound ${stale.map((k) => JSON.stringify(k)).join(", ")}` : ""}`;
}

/**
 * Takes the lock queue `name`: an exclusive, auto-delete queue this channel
 * consumes, so that closing the channel releases it (the consumer goes, the
 * queue with it). False when another connection holds it (405, which closes
 * the channel).
 */
async function lock(channel: WireChannel, name: string): Promise<boolean> {
  try {
    await channel.declareQueue(name, { durable: false, exclusive: true, autoDelete: true });
    await channel.consume(name, () => {}, { noAck: true });
    return true;
  } catch (err) {
    if ((err as { code?: unknown }).code === 405) return false;
    throw err;
  }
}

function publishRecord(channel: WireChannel, queue: string, record: BindingRecord): Promise<void> {
  return new Promise((resolve, reject) => {
    channel.publishConfirmed("", queue, encodeBody(record), { contentType: CONTENT_TYPE, deliveryMode: 2 }, (err) => (err === null ? resolve() : reject(err)));
  });
}

function readRecord(content: Buffer): BindingRecord | undefined {
  try {
    const value = JSON.parse(content.toString("utf8")) as Partial<BindingRecord>;
    if (typeof value.exchange === "string" && Array.isArray(value.keys) && value.keys.every((k) => typeof k === "string")) return { exchange: value.exchange, keys: value.keys };
  } catch {
    // An unreadable record counts as none.
  }
  return undefined;
}

function same(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && [...a].sort().every((k, i) => k === b[i]);
}

function describe(record: BindingRecord): string {
  return `${record.keys.map((k) => JSON.stringify(k)).join(", ")} on exchange "${record.exchange}"`;
}
