/**
 * `warren/testing`: test services without RabbitMQ. An in-memory broker runs warren's own
 * client, server and event bus, so what a test sees is what production does; fault rules
 * make the broker misbehave on purpose.
 *
 * ```ts
 * import { createTestKit } from "warren/testing";
 * const kit = createTestKit();
 * await serveCalculator(kit.server(), handlers);
 * const calc = new CalculatorClient(await kit.client());
 * kit.faults.on("Calculator.add").once().noReply();
 * ```
 */
/** The kit: {@link createTestKit} makes a {@link TestKit}. */
export { createTestKit, TestKit } from "./kit.js";
/** Options of {@link createTestKit}; what {@link TestKit.disconnect} takes. */
export type { TestKitOptions, KitPart } from "./kit.js";
/** Fault rules: `kit.faults.on(target)` makes a {@link FaultRule}. */
export { Faults, FaultRule, LATE_REPLY_MARGIN_MS } from "./faults.js";
/** What a fault rule applies to, and what its `when` predicate sees. */
export type { FaultTarget, FaultMessage } from "./faults.js";
/** The in-memory broker under the kit (warren's `ChannelSource` seam, in memory); `kit.broker` is one. */
export { MemoryBroker, MemoryConnection, MemoryChannel, brokerError, topicMatch } from "./memory-broker.js";
/** What the in-memory broker reports and hands its publish hook. */
export type { InterceptedPublish, PublishHook, Published, QueueInfo, StoredMessage } from "./memory-broker.js";
