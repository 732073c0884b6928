/**
 * Declaring what warren owns on the broker (service queues, consumer-group and
 * dead-letter queues, event exchanges) with the kind and type its owner asked
 * for, and turning the broker's refusals into errors that name the resource.
 */
import { RpcError } from "../core/errors.js";
import type { QueueType } from "../core/options.js";
import type { WireChannel } from "./channel-source.js";

/**
 * Declares `queue`, durable, of `type`. The broker refuses a queue that exists
 * with other arguments (PRECONDITION_FAILED, which also closes the channel):
 * that becomes `setup_failed` naming `what`, the queue and the type asked for;
 * a refused permission becomes `access_refused`.
 */
export async function declareDurableQueue(channel: WireChannel, what: string, queue: string, type: QueueType): Promise<void> {
  try {
    // No x-queue-type for classic: a queue declared before this option existed has none, and must stay equivalent.
    await channel.declareQueue(queue, type === "quorum" ? { durable: true, arguments: { "x-queue-type": "quorum" } } : { durable: true });
  } catch (err) {
    throw refusal(err, what, `queue "${queue}"`, "configure", (detail) =>
      `queue "${queue}" exists with other arguments than a ${type} queue (${detail}); use the queueType it was declared with, or delete the queue`,
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
