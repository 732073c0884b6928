/**
 * src/otel/ over the real broker: a call through a front service to a back one, and an event
 * through a group subscriber, read back from the SDK's in-memory span exporter.
 */
import { context, SpanKind, SpanStatusCode } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from "@opentelemetry/sdk-trace-base";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CalculatorClient, serveCalculator } from "../../generated/calculator/index.js";
import { Orders, OrdersPublisher, OrdersSubscriber, serveOrders } from "../../generated/orders/index.js";
import { EventBus } from "../../src/events/bus.js";
import { warrenTelemetry } from "../../src/otel/index.js";
import { calculatorHandlers } from "../helpers/calculator-handlers.js";
import { connect } from "../../src/index.js";
import { deleteAfter, deleteExchangeAfter, onTeardown, openConnection, recordingLogger, uniqueName, until } from "../helpers/broker.js";

const contextManager = new AsyncLocalStorageContextManager();
beforeAll(() => void context.setGlobalContextManager(contextManager.enable()));
afterAll(() => context.disable());

function setup() {
  const exporter = new InMemorySpanExporter();
  const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  onTeardown(() => tracerProvider.shutdown());
  return { exporter, t: warrenTelemetry({ tracerProvider, propagator: new W3CTraceContextPropagator() })! };
}
const only = (spans: ReadableSpan[], name: string, kind: SpanKind) => {
  const found = spans.filter((s) => s.name === name && s.kind === kind);
  expect(found, `one ${SpanKind[kind]} ${name}`).toHaveLength(1);
  return found[0]!;
};

describe("telemetry on RabbitMQ", () => {
  it("front to back: client > server > client > server in one trace, the reply span under each server span", async () => {
    const { exporter, t } = setup();
    const conn = await openConnection();
    const calcQueue = deleteAfter(uniqueName("calc"));
    const ordersQueue = deleteAfter(uniqueName("orders"));
    const server = conn.server({ interceptors: [t.server] });
    onTeardown(() => server.close());
    await serveCalculator(server, calculatorHandlers, { queue: calcQueue });
    const backClient = await conn.client({ interceptors: [t.client], queues: { Calculator: calcQueue } });
    onTeardown(() => backClient.close());
    const back = new CalculatorClient(backClient);
    await serveOrders(server, { placeOrder: async (req) => ({ orderId: `o-${(await back.add({ a: req.items.length, b: 1 })).sum}` }) }, { queue: ordersQueue });
    const front = await conn.client({ interceptors: [t.client], queues: { Orders: ordersQueue } });
    onTeardown(() => front.close());

    await expect(front.call(Orders.methods.placeOrder, { region: "eu", items: [{ sku: "x", quantity: 1 }] })).resolves.toEqual({ orderId: "o-2" });
    await until(() => exporter.getFinishedSpans().length >= 6, "six spans");
    const spans = exporter.getFinishedSpans();
    const c1 = only(spans, "Orders/place_order", SpanKind.CLIENT);
    const s1 = only(spans, "Orders/place_order", SpanKind.SERVER);
    const c2 = only(spans, "Calculator/add", SpanKind.CLIENT);
    const s2 = only(spans, "Calculator/add", SpanKind.SERVER);
    expect(new Set(spans.map((s) => s.spanContext().traceId)).size).toBe(1);
    expect([s1, c2, s2].map((s) => s.parentSpanContext?.spanId)).toEqual([c1, s1, c2].map((s) => s.spanContext().spanId));
    expect(s2.attributes).toMatchObject({ "rpc.system.name": "warren", "rpc.method": "Calculator/add", "messaging.system": "rabbitmq", "messaging.message.conversation_id": expect.stringMatching(/\./) });
    const replies = spans.filter((s) => s.name === "send" && s.kind === SpanKind.PRODUCER);
    expect(replies.map((r) => r.parentSpanContext?.spanId).sort()).toEqual([s1, s2].map((s) => s.spanContext().spanId).sort());
    // Over a real broker the reply crosses the network: the client span outlasts the server's.
    const end = (s: ReadableSpan) => s.endTime[0] * 1e9 + s.endTime[1];
    expect(end(c1)).toBeGreaterThanOrEqual(end(s1));
    expect(spans.every((s) => s.status.code === SpanStatusCode.UNSET)).toBe(true);
  });

  it("an event through a group subscriber: send > process, child and link", async () => {
    const { exporter, t } = setup();
    const conn = await openConnection();
    const exchange = deleteExchangeAfter(uniqueName("orders"));
    const queue = deleteAfter(`${exchange}.order_placed.billing`);
    deleteAfter(`${queue}.dead`);
    const bus = new EventBus(conn, { exchanges: { Orders: exchange }, publishInterceptors: [t.publish], processInterceptors: [t.process] });
    onTeardown(() => bus.close());
    const got: string[] = [];
    await new OrdersSubscriber(bus).onOrderPlaced((o) => void got.push(o.orderId), { group: "billing" });
    await new OrdersPublisher(bus).publishOrderPlaced({ orderId: "o-1", region: "eu", items: [{ sku: "x", quantity: 1 }] });
    await until(() => exporter.getFinishedSpans().length >= 2, "two spans");
    expect(got).toEqual(["o-1"]);
    const spans = exporter.getFinishedSpans();
    const send = only(spans, `send ${exchange}:orders.{region}.placed`, SpanKind.PRODUCER);
    const process = only(spans, `process ${exchange}:orders.*.placed:${queue}`, SpanKind.CONSUMER);
    expect(send.attributes).toMatchObject({ "messaging.destination.name": `${exchange}:orders.eu.placed`, "messaging.rabbitmq.destination.routing_key": "orders.eu.placed" });
    expect(process.attributes).toMatchObject({ "messaging.consumer.group.name": "billing", "messaging.destination.name": `${exchange}:orders.eu.placed:${queue}` });
    expect(process.parentSpanContext?.spanId).toBe(send.spanContext().spanId);
    expect(process.links.map((l) => l.context.spanId)).toEqual([send.spanContext().spanId]);
  });
});

describe("a connection installs telemetry by itself", () => {
  it("once an SDK registers a global tracer provider: every client and server of connect() traces, unless telemetry: false", async () => {
    const { trace, propagation } = await import("@opentelemetry/api");
    const exporter = new InMemorySpanExporter();
    const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
    trace.setGlobalTracerProvider(provider);
    propagation.setGlobalPropagator(new W3CTraceContextPropagator());
    onTeardown(async () => {
      trace.disable();
      propagation.disable();
      await provider.shutdown();
    });
    const queue = deleteAfter(uniqueName("calc"));
    for (const [telemetry, spans] of [[true, 2], [false, 0]] as const) {
      exporter.reset();
      const conn = await connect(undefined, { telemetry, logger: recordingLogger() });
      onTeardown(() => conn.close());
      const server = conn.server();
      await serveCalculator(server, calculatorHandlers, { queue });
      const client = new CalculatorClient(await conn.client({ queues: { Calculator: queue } }));
      await expect(client.add({ a: 1, b: 2 })).resolves.toEqual({ sum: 3 });
      await server.close();
      await new Promise((resolve) => setTimeout(resolve, 50)); // the server span ends after its reply is out
      expect(exporter.getFinishedSpans().filter((s) => s.name === "Calculator/add").map((s) => SpanKind[s.kind]).sort(), `telemetry: ${telemetry}`).toEqual(spans === 2 ? ["CLIENT", "SERVER"] : []);
    }
  });
});
