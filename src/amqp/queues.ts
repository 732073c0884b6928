/**
 * Declaring what warren owns on the broker (service queues, consumer-group and
 * dead-letter queues, event exchanges) with the kind and type its owner asked
 * for, and turning the broker's refusals into errors that name the resource.
 */
import { RpcError } from "../core/errors.js";
import type { QueueType } from "../core/options.js";
import { BROADCAST_RETRY_EXPIRES_MS } from "../core/protocol.js";
import type { QueueOptions, WireChannel } from "./channel-source.js";

/**
 * Declares `queue`, durable, of `type`, with `args` besides (e.g. a length
 * limit). The broker refuses a queue that exists with other arguments
 * (PRECONDITION_FAILED, which also closes the channel): that becomes
 * `setup_failed` naming `what`, the queue and the type asked for; a refused
 * permission becomes `access_refused`.
 */
export async function declareDurableQueue(channel: WireChannel, what: string, queue: string, type: QueueType, args: Readonly<Record<string, unknown>> = {}): Promise<void> {
  // No x-queue-type for classic: a queue declared before this option existed has none, and must stay equivalent.
  const all = type === "quorum" ? { "x-queue-type": "quorum", ...args } : { ...args };
  try {
    await channel.declareQueue(queue, Object.keys(all).length === 0 ? { durable: true } : { durable: true, arguments: all });
  } catch (err) {
    throw refusal(err, what, `queue "${queue}"`, "configure", (detail) =>
      `queue "${queue}" exists with other arguments than a ${type} queue${Object.keys(args).length === 0 ? "" : ` with ${JSON.stringify(args)}`} (${detail}); use the queueType it was declared with, or delete the queue`,
    );
  }
}

/** Where a wait queue sends what has waited, and how it lives. */
export interface WaitQueueSpec {
  /** How long each message waits, in whole milliseconds (`x-message-ttl`). */
  readonly delayMs: number;
  /** The queue a message goes back to once it has waited (dead-lettered through the default exchange). */
  readonly target: string;
  /**
   * A group's wait queue is durable, of the group's queue type; `exclusive`
   * (a broadcast subscriber's) is a classic queue of the declaring connection
   * that the broker deletes once unused for the delay plus a minute.
   */
  readonly kind: QueueType | "exclusive";
}

/**
 * How a wait queue is declared: every message expires after `delayMs` (one
 * TTL per queue, so expiry is in arrival order) and is dead-lettered to
 * `target`. A quorum wait queue dead-letters at-least-once (RabbitMQ 3.10+):
 * a message leaves it only once `target` has it.
 */
export function waitQueueOptions(spec: WaitQueueSpec): QueueOptions {
  const args: Record<string, unknown> = {
    "x-message-ttl": spec.delayMs,
    "x-dead-letter-exchange": "",
    "x-dead-letter-routing-key": spec.target,
  };
  if (spec.kind === "exclusive") return { durable: false, exclusive: true, arguments: { ...args, "x-expires": spec.delayMs + BROADCAST_RETRY_EXPIRES_MS } };
  if (spec.kind === "quorum") return { durable: true, arguments: { "x-queue-type": "quorum", ...args, "x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish" } };
  return { durable: true, arguments: args };
}

/**
 * Declares the wait queue `queue` (see {@link waitQueueOptions}). One that
 * exists with other arguments becomes `setup_failed` naming it; a refused
 * permission becomes `access_refused`.
 */
export async function declareWaitQueue(channel: WireChannel, what: string, queue: string, spec: WaitQueueSpec): Promise<void> {
  try {
    await channel.declareQueue(queue, waitQueueOptions(spec));
  } catch (err) {
    throw refusal(err, what, `queue "${queue}"`, "configure", (detail) =>
      `retry wait queue "${queue}" exists with other arguments than a ${spec.kind} queue whose messages wait ${spec.delayMs} ms and go back to "${spec.target}" (${detail}); delete it (once empty) or use the queueType it was declared with`,
    );
  }
}

/**
 * Declares the durable exchange `name` of `type`. One that exists as another
 * kind becomes `setup_failed` naming the exchange, its kind and the
 * contract's; a refused permission becomes `access_refused`.
 */
export async function declareExchange(channel: WireChannel, what: string, name: string, type: string): Promise<void> {
  try {
    await channel.declareExchange(name, type, { durable: true });
  } catch (err) {
    throw refusal(err, what, `exchange "${name}"`, "configure", (detail) => {
      const current = /current is '([^']*)'/.exec(detail)?.[1];
      return current === undefined || !/arg 'type'/.test(detail)
        ? `exchange "${name}" exists with other properties than a durable ${type} exchange (${detail}); delete it or change the contract`
        : `exchange "${name}" exists as a ${current} exchange, but the contract declares a ${type} exchange; delete the exchange or change the contract's exchange type`;
    });
  }
}

/** The AMQP reply code and text of a broker refusal (`code` on amqplib's errors), if `err` is one. */
export function brokerRefusal(err: unknown): { code: number; detail: string } | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== "number") return undefined;
  const message = (err as Error).message ?? "";
  // amqplib: `Operation failed: QueueDeclare; 406 (PRECONDITION-FAILED) with message "PRECONDITION_FAILED - <the broker's reason>"`.
  const detail = /[A-Z_]+ - ([^"]*)/.exec(message)?.[1] ?? message;
  return { code, detail };
}

/**
 * The error for a failed declaration of `resource`: 406 → `setup_failed`
 * (message from `mismatch`), 403 → `access_refused` naming the permission,
 * anything else unchanged (a lost channel, left to the caller).
 */
function refusal(err: unknown, what: string, resource: string, permission: string, mismatch: (detail: string) => string): unknown {
  const refused = brokerRefusal(err);
  if (refused?.code === 406) return new RpcError("setup_failed", `warren: ${what}: ${mismatch(refused.detail)}`, { cause: err });
  if (refused?.code === 403) {
    return new RpcError("access_refused", `warren: ${what}: the broker refused to declare ${resource} (${refused.detail}); the user needs the "${permission}" permission on it`, { cause: err });
  }
  return err;
}
