/**
 * A plain script (no test runner): an in-memory broker holds a message that expires in an hour
 * into a dead-letter exchange. The broker's expiry timer must not keep the process alive, so the
 * script prints `done` and exits at once.
 */
import { MemoryBroker } from "../../src/testing/memory-broker.js";

const broker = new MemoryBroker();
const ch = await broker.connect().open("confirm");
await ch.declareQueue("target", { durable: true });
await ch.declareQueue("wait", { durable: true, arguments: { "x-message-ttl": 3_600_000, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": "target" } });
await ch.declareQueue("lease", { durable: false, arguments: { "x-expires": 3_600_000 } });
await new Promise<void>((resolve, reject) => ch.publishConfirmed("", "wait", Buffer.from("later"), {}, (err) => (err ? reject(err) : resolve())));
console.log(`waiting ${broker.queue("wait")!.ready}`);
console.log("done");
