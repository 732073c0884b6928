/** RpcServer.health() and RpcClient.health() over the in-memory broker: ready, a lost connection, back again, closed. */
import { describe, expect, it } from "vitest";
import { RpcClient } from "../../src/rpc/client.js";
import { RpcServer } from "../../src/rpc/server.js";
import { Calculator } from "../../generated/calculator/index.js";
import { Orders } from "../../generated/orders/index.js";
import { calculatorHandlers } from "../helpers/calculator-handlers.js";
import { FakeBroker } from "../helpers/fake-channel-source.js";

const quiet = { warn() {}, error() {} };

describe("server.health()", () => {
  it("is not ok before a service is registered, ok while every service consumes, not ok while one resumes after a loss, and not ok once closed", async () => {
    const broker = new FakeBroker();
    const conn = broker.connect(quiet);
    const server = new RpcServer(conn);
    expect(server.health()).toEqual({ ok: false, services: [] });
    await server.register(Calculator, calculatorHandlers);
    expect(server.health()).toEqual({ ok: true, services: [{ service: "Calculator", queue: "rpc.Calculator", consuming: true, inFlight: 0 }] });
    conn.drop();
    await broker.settle();
    expect(server.health()).toMatchObject({ ok: false, services: [{ consuming: false }] });
    conn.reconnect();
    await broker.settle();
    await new Promise((resolve) => setTimeout(resolve, 250)); // the consumer's first retry after a loss
    expect(server.health().ok).toBe(true);
    await server.close();
    expect(server.health()).toEqual({ ok: false, services: [] });
  });
});

describe("client.health()", () => {
  it("is ok once its reply channel is up, reports calls in flight, is not ok while the connection is down, and not ok once closed", async () => {
    const broker = new FakeBroker();
    const conn = broker.connect(quiet);
    const client = new RpcClient(conn);
    expect(client.health()).toMatchObject({ ok: false, connected: false });
    await client.ready();
    expect(client.health()).toEqual({ ok: true, connected: true, closed: false, inFlight: 0, blocked: false });
    await (await broker.connect(quiet).open()).declareQueue("rpc.Orders", { durable: true }); // a queue nobody consumes: the call waits
    const pending = client.call(Orders.methods.placeOrder, { region: "eu", items: [{ sku: "tea", quantity: 1 }] }, { timeoutMs: 1000, waitForServer: true }).catch((e: unknown) => e);
    await broker.settle();
    expect(client.health().inFlight).toBe(1);
    conn.drop();
    await broker.settle();
    expect(await pending).toMatchObject({ code: "connection_lost" });
    expect(client.health()).toMatchObject({ ok: false, connected: false, inFlight: 0 });
    conn.reconnect();
    await broker.settle();
    // Reopened by itself after the reconnection: ready again without a call.
    expect(client.health().ok).toBe(true);
    await client.close();
    expect(client.health()).toMatchObject({ ok: false, closed: true });
  });
});
