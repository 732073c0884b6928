/**
 * The in-memory RabbitMQ the unit tests of `rpc/` and `events/` run on, under the names they
 * have always used. It lives in src/testing/memory-broker.ts now (users get it through
 * `warren/testing`); this file only re-exports it.
 */
export {
  MemoryBroker as FakeBroker,
  MemoryConnection as FakeConnection,
  MemoryChannel as FakeChannel,
  brokerError,
  topicMatch,
} from "../../src/testing/memory-broker.js";
export type { StoredMessage, Published, QueueInfo } from "../../src/testing/memory-broker.js";
