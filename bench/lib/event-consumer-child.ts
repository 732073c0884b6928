/**
 * Child-process entry of the events benchmark: runs one implementation's
 * consumer, so it does not share an event loop with the publishers.
 *   argv: <impl> <url> <exchange> <deadLetterQueue>
 * IPC: sends {ready: true} (or {error}); on {expect: n} answers
 * {reached: n} once n events were consumed and checked, and exactly events
 * 0 .. n-1 (or {error}); on a wrong event sends {error}; stops on "stop".
 */
import { serveInChild } from "./child.js";
import { EVENT_CONSUMERS, type EventConsumerImpl, type EventImplName } from "./event-impls.js";

const [impl, url, exchange, deadLetterQueue] = process.argv.slice(2) as [EventImplName, string, string, string];

let consumer: EventConsumerImpl | undefined;

function fail(err: unknown): void {
  process.send?.({ error: (err as Error)?.stack ?? String(err) });
}

process.on("message", (m: { expect?: number } | string) => {
  if (typeof m !== "object" || typeof m.expect !== "number" || consumer === undefined) return;
  const n = m.expect;
  const check = consumer.check;
  check.whenCount(n, () => {
    try {
      check.complete(n);
      process.send?.({ reached: n });
    } catch (err) {
      fail(err);
    }
  });
});

await serveInChild(async () => {
  consumer = await EVENT_CONSUMERS[impl](url, { exchange, deadLetterQueue }, fail);
  return consumer;
});
