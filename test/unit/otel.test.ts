/**
 * src/otel/: spans and metrics of calls and events, read back from the SDK's in-memory
 * exporters, over real RpcClient / RpcServer / EventBus on the in-memory broker.
 */
import { context, propagation, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { AggregationTemporality, InMemoryMetricExporter, MeterProvider, PeriodicExportingMetricReader, type HistogramMetricData, type SumMetricData } from "@opentelemetry/sdk-metrics";
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from "@opentelemetry/sdk-trace-base";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { RpcError } from "../../src/core/errors.js";
import { EventBus } from "../../src/events/bus.js";
import { loadOtelApi, semconvMode } from "../../src/otel/api.js";
import { defaultTelemetry, isTelemetryInterceptor } from "../../src/otel/default.js";
import { warrenTelemetry, type TelemetryOptions, type WarrenTelemetry } from "../../src/otel/index.js";
import { RpcClient } from "../../src/rpc/client.js";
import type { ServerInterceptor } from "../../src/rpc/interceptors.js";
import { RpcServer } from "../../src/rpc/server.js";
import { Calculator, type CalculatorHandlers } from "../../generated/calculator/index.js";
import { Orders, OrdersPublisher, OrdersSubscriber } from "../../generated/orders/index.js";
import { calculatorHandlers } from "../helpers/calculator-handlers.js";
import { FakeBroker, type FakeConnection } from "../helpers/fake-channel-source.js";

const quiet = { warn() {}, error() {} };
const contextManager = new AsyncLocalStorageContextManager();
beforeAll(() => void context.setGlobalContextManager(contextManager.enable()));
afterAll(() => {
  context.disable();
  propagation.disable();
  trace.disable();
});

let broker: FakeBroker;
let spans: InMemorySpanExporter;
let metricExporter: InMemoryMetricExporter;
let reader: PeriodicExportingMetricReader;
let tracerProvider: BasicTracerProvider;
let meterProvider: MeterProvider;

beforeEach(() => {
  broker = new FakeBroker();
  spans = new InMemorySpanExporter();
  tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] });
  metricExporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
  reader = new PeriodicExportingMetricReader({ exporter: metricExporter, exportIntervalMillis: 3_600_000 });
  meterProvider = new MeterProvider({ readers: [reader] });
});
afterEach(async () => {
  await meterProvider.shutdown();
  await tracerProvider.shutdown();
});

function telemetry(options: TelemetryOptions = {}): WarrenTelemetry {
  return warrenTelemetry({ tracerProvider, meterProvider, propagator: new W3CTraceContextPropagator(), ...options })!;
}

/** The finished spans once the in-flight ones (a server span ends a turn after its reply) have ended. */
async function finished(count: number): Promise<ReadableSpan[]> {
  for (let i = 0; i < 1000 && spans.getFinishedSpans().length < count; i++) await new Promise((r) => setTimeout(r, 5));
  await new Promise((r) => setTimeout(r, 5));
  return spans.getFinishedSpans();
}

const byName = (all: ReadableSpan[], name: string, kind?: SpanKind) => all.filter((s) => s.name === name && (kind === undefined || s.kind === kind));
const one = (all: ReadableSpan[], name: string, kind: SpanKind) => {
  const found = byName(all, name, kind);
  expect(found.map((s) => s.name), `one ${SpanKind[kind]} span ${name}`).toHaveLength(1);
  return found[0]!;
};
const parentOf = (span: ReadableSpan) => span.parentSpanContext?.spanId;

async function metric(name: string) {
  await reader.forceFlush();
  const all = metricExporter.getMetrics().flatMap((rm) => rm.scopeMetrics.flatMap((sm) => sm.metrics));
  return all.filter((m) => m.descriptor.name === name).at(-1);
}

const calculator = (overrides: Partial<CalculatorHandlers> = {}): CalculatorHandlers => ({ ...calculatorHandlers, ...overrides });

describe("RPC spans", () => {
  it("a call through a front service to a back one: client > server > client > server, one trace, named and attributed by the conventions", async () => {
    const t = telemetry();
    await new RpcServer(broker.connect(), { interceptors: [t.server], logger: quiet }).register(Calculator, calculator());
    const back = new RpcClient(broker.connect(), { interceptors: [t.client] });
    await new RpcServer(broker.connect(), { interceptors: [t.server], logger: quiet }).register(Orders, {
      placeOrder: async (req) => {
        const { sum } = await back.call(Calculator.methods.add, { a: req.items.length, b: 1 });
        return { orderId: `o-${sum}` };
      },
    });
    const front = new RpcClient(broker.connect(), { interceptors: [t.client] });
    await expect(front.call(Orders.methods.placeOrder, { region: "eu", items: [{ sku: "x", quantity: 1 }] })).resolves.toEqual({ orderId: "o-2" });

    const all = await finished(6);
    const c1 = one(all, "Orders/place_order", SpanKind.CLIENT);
    const s1 = one(all, "Orders/place_order", SpanKind.SERVER);
    const c2 = one(all, "Calculator/add", SpanKind.CLIENT);
    const s2 = one(all, "Calculator/add", SpanKind.SERVER);
    expect(new Set(all.map((s) => s.spanContext().traceId)).size).toBe(1);
    expect(parentOf(c1)).toBeUndefined();
    expect(parentOf(s1)).toBe(c1.spanContext().spanId);
    expect(parentOf(c2)).toBe(s1.spanContext().spanId);
    expect(parentOf(s2)).toBe(c2.spanContext().spanId);
    expect(c1.attributes).toEqual({
      "rpc.system.name": "warren",
      "rpc.method": "Orders/place_order",
      "server.address": "rpc.Orders",
      "messaging.system": "rabbitmq",
      "messaging.destination.name": "rpc.Orders",
      "messaging.message.conversation_id": s1.attributes["messaging.message.conversation_id"],
    });
    expect(c1.attributes["messaging.message.conversation_id"]).toBe(broker.published.find((p) => p.routingKey === "rpc.Orders")!.properties.correlationId);
    expect(s2.attributes).toMatchObject({ "rpc.system.name": "warren", "rpc.method": "Calculator/add", "messaging.system": "rabbitmq", "messaging.message.conversation_id": expect.any(String) });
    expect(s2.attributes["messaging.message.conversation_id"]).toBe(broker.published.find((p) => p.routingKey === "rpc.Calculator")!.properties.correlationId);
    for (const span of [c1, s1, c2, s2]) {
      expect(span.status.code).toBe(SpanStatusCode.UNSET);
      expect(span.attributes["error.type"]).toBeUndefined();
    }
    // Each server span has the reply under it: a send to a temporary, anonymous destination, ending with it.
    const replies = byName(all, "send", SpanKind.PRODUCER);
    expect(replies.map(parentOf).sort()).toEqual([s1, s2].map((s) => s.spanContext().spanId).sort());
    expect(replies[0]!.attributes).toMatchObject({ "messaging.system": "rabbitmq", "messaging.operation.type": "send", "messaging.destination.temporary": true, "messaging.destination.anonymous": true });
    // The client span covers the server span, which covers the handler's own call.
    // (Ends are not compared with the client's: the in-memory broker hands the reply over within the server's turn.)
    const t0 = (s: ReadableSpan) => s.startTime[0] * 1e9 + s.startTime[1];
    const t1 = (s: ReadableSpan) => s.endTime[0] * 1e9 + s.endTime[1];
    expect(t0(c1) <= t0(s1) && t0(s1) <= t0(c2) && t0(c2) <= t0(s2)).toBe(true);
    expect(t1(s2) <= t1(s1) && t1(c2) <= t1(s1)).toBe(true);
  });

  it("the server span and its reply span end once the reply is published, not when the handler returns", async () => {
    const repliesAtEnd: [string, number][] = [];
    const replies = () => broker.published.filter((p) => p.properties.type === "result").length;
    const watcher = new BasicTracerProvider({ spanProcessors: [{ onStart() {}, onEnd: (span: ReadableSpan) => void repliesAtEnd.push([`${SpanKind[span.kind]} ${span.name}`, replies()]), forceFlush: async () => {}, shutdown: async () => {} }] });
    const t = warrenTelemetry({ tracerProvider: watcher, meterProvider, propagator: new W3CTraceContextPropagator() })!;
    await new RpcServer(broker.connect(), { interceptors: [t.server], logger: quiet }).register(Calculator, calculator({ add: async ({ a, b }) => ({ sum: a + b }) }));
    await new RpcClient(broker.connect()).call(Calculator.methods.add, { a: 1, b: 2 });
    for (let i = 0; i < 100 && repliesAtEnd.length < 2; i++) await new Promise((r) => setTimeout(r, 5));
    expect(repliesAtEnd).toEqual([["PRODUCER send", 1], ["SERVER Calculator/add", 1]]);
  });

  it("the request carries the client span's traceparent in its headers", async () => {
    const t = telemetry();
    await new RpcServer(broker.connect(), { interceptors: [t.server], logger: quiet }).register(Calculator, calculator());
    await new RpcClient(broker.connect(), { interceptors: [t.client] }).call(Calculator.methods.add, { a: 1, b: 2 }, { headers: { tenant: "t1" } });
    const [client] = byName(await finished(3), "Calculator/add", SpanKind.CLIENT);
    const headers = broker.published.find((p) => p.routingKey === "rpc.Calculator")!.properties.headers as Record<string, unknown>;
    expect(headers).toMatchObject({ tenant: "t1", traceparent: `00-${client!.spanContext().traceId}-${client!.spanContext().spanId}-01` });
  });

  it("a failing call: the declared error is error.type and rpc.response.status_code; the client span fails, the server span does not (the caller's error)", async () => {
    const t = telemetry();
    await new RpcServer(broker.connect(), { interceptors: [t.server], logger: quiet }).register(Calculator, calculator());
    const client = new RpcClient(broker.connect(), { interceptors: [t.client] });
    await expect(client.call(Calculator.methods.divide, { dividend: 1, divisor: 0 })).rejects.toMatchObject({ code: "division_by_zero" });
    const all = await finished(3);
    const dc = one(all, "Calculator/divide", SpanKind.CLIENT);
    expect(dc.attributes).toMatchObject({ "error.type": "division_by_zero", "rpc.response.status_code": "division_by_zero" });
    expect(dc.status).toMatchObject({ code: SpanStatusCode.ERROR });
    const ds = one(all, "Calculator/divide", SpanKind.SERVER);
    expect(ds.attributes).toMatchObject({ "error.type": "division_by_zero", "rpc.response.status_code": "division_by_zero" });
    expect(ds.status.code).toBe(SpanStatusCode.UNSET);
  });

  it("a handler that throws: internal on both sides, the server span failed with the thrown message", async () => {
    const t = telemetry();
    await new RpcServer(broker.connect(), { interceptors: [t.server], logger: quiet }).register(Calculator, calculator({ add: () => { throw new TypeError("boom"); } }));
    await expect(new RpcClient(broker.connect(), { interceptors: [t.client] }).call(Calculator.methods.add, { a: 1, b: 2 })).rejects.toMatchObject({ code: "internal" });
    const all = await finished(3);
    expect(one(all, "Calculator/add", SpanKind.CLIENT).attributes).toMatchObject({ "error.type": "internal", "rpc.response.status_code": "internal" });
    const server = one(all, "Calculator/add", SpanKind.SERVER);
    expect(server.attributes).toMatchObject({ "error.type": "internal", "rpc.response.status_code": "internal" });
    expect(server.status).toMatchObject({ code: SpanStatusCode.ERROR, message: "boom" });
  });

  it("a reply the open channel refuses: the SERVER span and its send span fail with the publish error, saying it was dropped; the request is acknowledged", async () => {
    const t = telemetry();
    await new RpcServer(broker.connect(), { interceptors: [t.server], logger: quiet }).register(Calculator, calculator());
    const [serverChannel] = broker.channels("rpc.Calculator");
    vi.spyOn(serverChannel!, "publish").mockImplementationOnce(() => { throw new TypeError("header too long"); });
    void new RpcClient(broker.connect()).call(Calculator.methods.add, { a: 1, b: 2 }, { timeoutMs: 100 }).catch(() => {});
    const all = await finished(2);
    const dropped = "reply not published (header too long): dropped, the request is acknowledged";
    const server = one(all, "Calculator/add", SpanKind.SERVER);
    expect(server.status).toEqual({ code: SpanStatusCode.ERROR, message: dropped });
    expect(server.attributes["error.type"]).toBe("TypeError");
    expect(server.attributes["rpc.response.status_code"]).toBeUndefined(); // no code was sent
    const send = one(all, "send", SpanKind.PRODUCER);
    expect([send.status, send.attributes["error.type"]]).toEqual([{ code: SpanStatusCode.ERROR, message: dropped }, "TypeError"]);
    const serverMetric = (await metric("rpc.server.call.duration")) as HistogramMetricData;
    expect(serverMetric.dataPoints.map((p) => p.attributes)).toEqual([{ "rpc.system.name": "warren", "rpc.method": "Calculator/add", "error.type": "TypeError" }]);
    await broker.settle();
    expect(broker.queue("rpc.Calculator")).toMatchObject({ ready: 0, unacked: 0 });
  });

  it("a reply the open channel refuses, behind an interceptor that hands on a copy of the context: the SERVER span still fails", async () => {
    const t = telemetry();
    const copying: ServerInterceptor = (next) => (request, ctx) => next(request, { ...ctx, headers: { ...ctx.headers, seen: true } });
    await new RpcServer(broker.connect(), { interceptors: [copying, t.server], logger: quiet }).register(Calculator, calculator());
    const [serverChannel] = broker.channels("rpc.Calculator");
    vi.spyOn(serverChannel!, "publish").mockImplementationOnce(() => { throw new TypeError("header too long"); });
    void new RpcClient(broker.connect()).call(Calculator.methods.add, { a: 1, b: 2 }, { timeoutMs: 100 }).catch(() => {});
    const all = await finished(2);
    const server = one(all, "Calculator/add", SpanKind.SERVER);
    expect(server.status).toEqual({ code: SpanStatusCode.ERROR, message: "reply not published (header too long): dropped, the request is acknowledged" });
  });

  it("a reply whose channel closed first (here while the server closes): both spans fail, saying the broker redelivers the request", async () => {
    const t = telemetry();
    let release: (() => void) | undefined;
    const server = new RpcServer(broker.connect(), { interceptors: [t.server], logger: quiet });
    await server.register(Calculator, calculator({ add: () => new Promise((resolve) => (release = () => resolve({ sum: 3 }))) }));
    const [serverChannel] = broker.channels("rpc.Calculator");
    void new RpcClient(broker.connect()).call(Calculator.methods.add, { a: 1, b: 2 }, { timeoutMs: 100 }).catch(() => {});
    while (release === undefined) await broker.settle();
    const closing = server.close();
    await broker.settle();
    serverChannel!.failByBroker();
    release();
    await closing;
    const all = await finished(2);
    const redelivered = "reply not published (Channel closed): its channel closed, the broker redelivers the request";
    const span = one(all, "Calculator/add", SpanKind.SERVER);
    expect([span.status, span.attributes["error.type"]]).toEqual([{ code: SpanStatusCode.ERROR, message: redelivered }, "Error"]);
    const send = one(all, "send", SpanKind.PRODUCER);
    expect([send.status, send.attributes["error.type"]]).toEqual([{ code: SpanStatusCode.ERROR, message: redelivered }, "Error"]);
    expect(broker.queue("rpc.Calculator")).toMatchObject({ ready: 1, unacked: 0 }); // back in the queue for the next server
  });

  it("a retried call: one client span covers the idempotent method's retry after connection_lost; both attempts' server spans are its children", async () => {
    const t = telemetry();
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let calls = 0;
    await new RpcServer(broker.connect(), { interceptors: [t.server], logger: quiet }).register(
      Calculator,
      calculator({ add: async ({ a, b }) => (++calls === 1 ? (await held, { sum: -1 }) : { sum: a + b }) }),
    );
    const clientConn: FakeConnection = broker.connect();
    const call = new RpcClient(clientConn, { interceptors: [t.client] }).call(Calculator.methods.add, { a: 1, b: 2 }, { timeoutMs: 5000 });
    while (calls === 0) await broker.settle();
    clientConn.channels[0]!.failByBroker(); // the reply channel is gone while the first attempt runs
    await expect(call).resolves.toEqual({ sum: 3 });
    release();

    const all = await finished(5);
    const client = one(all, "Calculator/add", SpanKind.CLIENT);
    expect(client.status.code).toBe(SpanStatusCode.UNSET);
    const servers = byName(all, "Calculator/add", SpanKind.SERVER);
    expect(servers).toHaveLength(2);
    expect(servers.map(parentOf)).toEqual([client.spanContext().spanId, client.spanContext().spanId]);
    expect(broker.published.filter((p) => p.routingKey === "rpc.Calculator")).toHaveLength(2);
    // The client span lasts from the call to the retry's reply: it ends after the second server span.
    // HrTime is [seconds, nanoseconds]: compared as numbers, not as arrays (which compare as strings).
    const ns = ([sec, nanos]: readonly [number, number]) => BigInt(sec) * 1_000_000_000n + BigInt(nanos);
    const last = servers.reduce((a, b) => (ns(b.startTime) > ns(a.startTime) ? b : a));
    expect(ns(client.endTime) >= ns(last.startTime)).toBe(true);
  });

  it("an expired request: the client span ends with timeout; the server drops the request unrun, so there is no server span", async () => {
    const t = telemetry();
    await new RpcServer(broker.connect(), { interceptors: [t.server], logger: quiet }).register(Calculator, calculator());
    let late: (() => void) | undefined;
    broker.intercept((p) => (p.routingKey === "rpc.Calculator" ? (late = () => p.route()) : p.route()));
    const call = new RpcClient(broker.connect(), { interceptors: [t.client] }).call(Calculator.methods.add, { a: 1, b: 2 }, { timeoutMs: 20 });
    await expect(call).rejects.toMatchObject({ code: "timeout" });
    broker.intercept(undefined);
    late!(); // delivered after its deadline: the server acks and drops it
    await broker.settle();
    const all = await finished(1);
    expect(all.map((s) => `${SpanKind[s.kind]} ${s.name}`)).toEqual(["CLIENT Calculator/add"]);
    expect(all[0]!.attributes).toMatchObject({ "error.type": "timeout", "rpc.response.status_code": "timeout" });
    expect(all[0]!.status.code).toBe(SpanStatusCode.ERROR);
    expect(broker.queue("rpc.Calculator")?.messages ?? []).toHaveLength(0);
  });

  it("a client interceptor inside the telemetry one sees the span as the active context; a caller's own traceparent becomes the parent", async () => {
    const t = telemetry();
    await new RpcServer(broker.connect(), { interceptors: [t.server], logger: quiet }).register(Calculator, calculator());
    const seen: (string | undefined)[] = [];
    const client = new RpcClient(broker.connect(), { interceptors: [t.client, (next) => (call) => (seen.push(trace.getActiveSpan()?.spanContext().spanId), next(call))] });
    const traceId = "0af7651916cd43dd8448eb211c80319c";
    await client.call(Calculator.methods.add, { a: 1, b: 2 }, { headers: { traceparent: `00-${traceId}-b7ad6b7169203331-01` } });
    const all = await finished(3);
    const span = one(all, "Calculator/add", SpanKind.CLIENT);
    expect(seen).toEqual([span.spanContext().spanId]);
    expect(span.spanContext().traceId).toBe(traceId);
    expect(parentOf(span)).toBe("b7ad6b7169203331");
  });
});

describe("RPC metrics", () => {
  it("rpc.client.call.duration and rpc.server.call.duration, in seconds, with the conventions' attributes", async () => {
    const t = telemetry();
    await new RpcServer(broker.connect(), { interceptors: [t.server], logger: quiet }).register(Calculator, calculator());
    const client = new RpcClient(broker.connect(), { interceptors: [t.client] });
    await client.call(Calculator.methods.add, { a: 1, b: 2 });
    await client.call(Calculator.methods.divide, { dividend: 1, divisor: 0 }).catch(() => {});
    await finished(6);
    const clientMetric = (await metric("rpc.client.call.duration")) as HistogramMetricData;
    expect(clientMetric.descriptor.unit).toBe("s");
    expect(clientMetric.dataPoints.map((p) => p.attributes)).toEqual([
      { "rpc.system.name": "warren", "rpc.method": "Calculator/add", "server.address": "rpc.Calculator" },
      { "rpc.system.name": "warren", "rpc.method": "Calculator/divide", "server.address": "rpc.Calculator", "error.type": "division_by_zero", "rpc.response.status_code": "division_by_zero" },
    ]);
    const clientSpan = one(spans.getFinishedSpans(), "Calculator/add", SpanKind.CLIENT);
    const spanSeconds = clientSpan.duration[0] + clientSpan.duration[1] / 1e9;
    expect(clientMetric.dataPoints[0]!.value.sum).toBeCloseTo(spanSeconds, 5); // the same clock and the same instants
    expect(clientMetric.dataPoints[0]!.value.sum).toBeLessThan(1);
    const serverMetric = (await metric("rpc.server.call.duration")) as HistogramMetricData;
    expect(serverMetric.descriptor.unit).toBe("s");
    expect(serverMetric.dataPoints.map((p) => [p.attributes, p.value.count])).toEqual([
      [{ "rpc.system.name": "warren", "rpc.method": "Calculator/add" }, 1],
      [{ "rpc.system.name": "warren", "rpc.method": "Calculator/divide", "error.type": "division_by_zero", "rpc.response.status_code": "division_by_zero" }, 1],
    ]);
    expect(await metric("rpc.client.duration")).toBeUndefined();
  });

  it("OTEL_SEMCONV_STABILITY_OPT_IN=rpc/dup adds rpc.system, rpc.service and the millisecond metrics; rpc alone changes nothing", async () => {
    expect(semconvMode("http, rpc/dup")).toEqual({ rpcDup: true, messagingDup: false });
    expect(semconvMode("rpc,messaging")).toEqual({ rpcDup: false, messagingDup: false });
    expect(semconvMode(undefined)).toEqual({ rpcDup: false, messagingDup: false });
    const t = telemetry({ semconvStabilityOptIn: "rpc/dup" });
    await new RpcServer(broker.connect(), { interceptors: [t.server], logger: quiet }).register(Calculator, calculator());
    await new RpcClient(broker.connect(), { interceptors: [t.client] }).call(Calculator.methods.add, { a: 1, b: 2 });
    const all = await finished(3);
    expect(one(all, "Calculator/add", SpanKind.CLIENT).attributes).toMatchObject({ "rpc.system.name": "warren", "rpc.system": "warren", "rpc.service": "Calculator", "rpc.method": "Calculator/add" });
    const old = (await metric("rpc.client.duration")) as HistogramMetricData;
    expect(old.descriptor.unit).toBe("ms");
    expect(old.dataPoints[0]!.attributes).toEqual({ "rpc.system": "warren", "rpc.service": "Calculator", "rpc.method": "add" });
  });
});

describe("event spans and metrics", () => {
  async function orders(t: WarrenTelemetry, handler: (orderId: string) => void | Promise<void>, options: { group?: string; retryDelayMs?: number } = {}) {
    const bus = new EventBus(broker.connect(), { publishInterceptors: [t.publish], processInterceptors: [t.process], logger: quiet });
    await new OrdersSubscriber(bus).onOrderPlaced((o) => handler(o.orderId), { retryDelayMs: 1, ...options });
    return new OrdersPublisher(bus);
  }
  const order = { orderId: "o-1", region: "eu" as const, items: [{ sku: "x", quantity: 1 }] };

  it("an event through a group subscriber: a PRODUCER send span, a CONSUMER process span that is its child and links to it", async () => {
    const t = telemetry();
    const got: string[] = [];
    await (await orders(t, (id) => void got.push(id), { group: "billing" })).publishOrderPlaced(order);
    const all = await finished(2);
    expect(got).toEqual(["o-1"]);
    const send = one(all, "send events.Orders:orders.{region}.placed", SpanKind.PRODUCER);
    const process = one(all, "process events.Orders:orders.*.placed:events.Orders.order_placed.billing", SpanKind.CONSUMER);
    const messageId = broker.published.find((p) => p.exchange === "events.Orders")!.properties.messageId;
    expect(send.attributes).toEqual({
      "messaging.system": "rabbitmq",
      "messaging.operation.name": "send",
      "messaging.operation.type": "send",
      "messaging.destination.name": "events.Orders:orders.eu.placed",
      "messaging.destination.template": "events.Orders:orders.{region}.placed",
      "messaging.rabbitmq.destination.routing_key": "orders.eu.placed",
      "messaging.message.id": messageId,
    });
    expect(process.attributes).toEqual({
      "messaging.system": "rabbitmq",
      "messaging.operation.name": "process",
      "messaging.operation.type": "process",
      "messaging.destination.name": "events.Orders:orders.eu.placed:events.Orders.order_placed.billing",
      "messaging.destination.template": "events.Orders:orders.*.placed:events.Orders.order_placed.billing",
      "messaging.rabbitmq.destination.routing_key": "orders.eu.placed",
      "messaging.consumer.group.name": "billing",
      "messaging.message.id": messageId,
    });
    expect(parentOf(process)).toBe(send.spanContext().spanId);
    expect(process.links.map((l) => l.context.spanId)).toEqual([send.spanContext().spanId]);
    expect(process.spanContext().traceId).toBe(send.spanContext().traceId);

    const sent = (await metric("messaging.client.sent.messages")) as SumMetricData;
    expect(sent.descriptor.unit).toBe("{message}");
    expect(sent.dataPoints.map((p) => [p.attributes, p.value])).toEqual([
      [{ "messaging.system": "rabbitmq", "messaging.operation.name": "send", "messaging.destination.template": "events.Orders:orders.{region}.placed" }, 1],
    ]);
    const processed = (await metric("messaging.process.duration")) as HistogramMetricData;
    expect(processed.descriptor.unit).toBe("s");
    expect(processed.dataPoints.map((p) => [p.attributes, p.value.count])).toEqual([
      [{ "messaging.system": "rabbitmq", "messaging.operation.name": "process", "messaging.destination.template": "events.Orders:orders.*.placed:events.Orders.order_placed.billing", "messaging.consumer.group.name": "billing" }, 1],
    ]);
  });

  it("a failing handler: one process span per attempt, the failed one with error.type; each links to the one send span", async () => {
    const t = telemetry();
    let attempts = 0;
    await (await orders(t, () => { if (++attempts === 1) throw new RangeError("not yet"); }, { group: "billing" })).publishOrderPlaced(order);
    const all = await finished(3);
    const send = one(all, "send events.Orders:orders.{region}.placed", SpanKind.PRODUCER);
    const processes = all.filter((s) => s.kind === SpanKind.CONSUMER);
    expect(processes.map((p) => [p.attributes["error.type"], p.status.code])).toEqual([["RangeError", SpanStatusCode.ERROR], [undefined, SpanStatusCode.UNSET]]);
    for (const p of processes) expect(p.links.map((l) => l.context.spanId)).toEqual([send.spanContext().spanId]);
  });

  it("a broadcast subscriber's queue is temporary and anonymous, left out of the name; processParent none makes a new trace, linked", async () => {
    const t = telemetry({ processParent: "none" });
    await (await orders(t, () => {})).publishOrderPlaced(order);
    const all = await finished(2);
    const send = one(all, "send events.Orders:orders.{region}.placed", SpanKind.PRODUCER);
    const process = one(all, "process events.Orders:orders.*.placed", SpanKind.CONSUMER);
    expect(process.attributes).toMatchObject({ "messaging.destination.name": "events.Orders:orders.eu.placed", "messaging.destination.temporary": true, "messaging.destination.anonymous": true });
    expect(process.attributes["messaging.consumer.group.name"]).toBeUndefined();
    expect(parentOf(process)).toBeUndefined();
    expect(process.spanContext().traceId).not.toBe(send.spanContext().traceId);
    expect(process.links.map((l) => l.context.spanId)).toEqual([send.spanContext().spanId]);
  });

  it("an event published from a handler continues the call's trace; a publisher's own traceparent is kept and linked", async () => {
    const t = telemetry();
    const publisher = await orders(t, () => {}, { group: "billing" });
    await new RpcServer(broker.connect(), { interceptors: [t.server], logger: quiet }).register(Orders, {
      placeOrder: async () => (await publisher.publishOrderPlaced(order), { orderId: "o-1" }),
    });
    await new RpcClient(broker.connect(), { interceptors: [t.client] }).call(Orders.methods.placeOrder, { region: "eu", items: [{ sku: "x", quantity: 1 }] });
    let all = await finished(5);
    const server = one(all, "Orders/place_order", SpanKind.SERVER);
    expect(parentOf(one(all, "send events.Orders:orders.{region}.placed", SpanKind.PRODUCER))).toBe(server.spanContext().spanId);

    spans.reset();
    const custom = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    await publisher.publishOrderPlaced(order, { headers: { traceparent: custom } });
    all = await finished(2);
    const send = one(all, "send events.Orders:orders.{region}.placed", SpanKind.PRODUCER);
    expect(send.links.map((l) => l.context.spanId)).toEqual(["b7ad6b7169203331"]);
    expect((broker.published.at(-1)!.properties.headers as Record<string, unknown>).traceparent).toBe(custom);
  });
});

describe("switching telemetry on", () => {
  it("finds @opentelemetry/api with require, synchronously, and keeps the answer", () => {
    const api = loadOtelApi();
    expect(api).toBeDefined();
    expect(loadOtelApi()).toBe(api);
    expect(typeof api!.trace.getTracer).toBe("function");
  });

  it("the default installs nothing until an SDK registers a provider, nor with WARREN_TELEMETRY=off", () => {
    expect(defaultTelemetry()).toBeUndefined(); // the API alone: no interceptors, nothing per call
    trace.setGlobalTracerProvider(tracerProvider);
    try {
      const t = defaultTelemetry()!;
      expect(t).toMatchObject({ client: expect.any(Function), server: expect.any(Function) });
      expect([t.client, t.server, t.publish, t.process].every(isTelemetryInterceptor)).toBe(true);
      expect(isTelemetryInterceptor((next: unknown) => next)).toBe(false);
      process.env.WARREN_TELEMETRY = "off";
      expect(defaultTelemetry()).toBeUndefined();
    } finally {
      delete process.env.WARREN_TELEMETRY;
      trace.disable();
    }
    expect(defaultTelemetry()).toBeUndefined();
  });

  it("interceptors installed with the API but no SDK: no spans, nothing injected, and a handler still forwards the traceparent it was given, by hand", async () => {
    const t = warrenTelemetry()!; // the API's globals: a no-op tracer provider and propagator
    const forwarded: unknown[] = [];
    await new RpcServer(broker.connect(), { interceptors: [t.server], logger: quiet }).register(Calculator, calculator({ add: (r, ctx) => (forwarded.push(ctx.headers.traceparent), { sum: r.a + r.b }) }));
    const back = new RpcClient(broker.connect(), { interceptors: [t.client] });
    await new RpcServer(broker.connect(), { interceptors: [t.server], logger: quiet }).register(Orders, {
      placeOrder: async () => (await back.call(Calculator.methods.add, { a: 1, b: 1 }), { orderId: "o" }),
    });
    const front = new RpcClient(broker.connect(), { interceptors: [t.client] });
    await front.call(Calculator.methods.add, { a: 1, b: 1 });
    const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    await front.call(Orders.methods.placeOrder, { region: "eu", items: [{ sku: "x", quantity: 1 }] }, { headers: { traceparent } });
    expect(forwarded).toEqual([undefined, traceparent]);
    expect(spans.getFinishedSpans()).toEqual([]);
  });

  it("an interceptor list without telemetry is untouched: RpcError from a telemetry-wrapped call is the original", async () => {
    const t = telemetry();
    const err = await new RpcClient(broker.connect(), { interceptors: [t.client] }).call(Calculator.methods.add, { a: 1, b: 2 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RpcError);
    expect(err).toMatchObject({ code: "no_server" });
    const [span] = await finished(1);
    expect(span!.attributes).toMatchObject({ "error.type": "no_server" });
  });
});
