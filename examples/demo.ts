/**
 * warren demo: serves the example contracts and calls them through the
 * generated stubs. Run with `npm run demo` (needs RabbitMQ; AMQP_URL overrides
 * the default amqp://guest:guest@127.0.0.1:5672).
 */
import { Calculator, CalculatorClient, serveCalculator } from "../generated/calculator/index.js";
import { Fibonacci, FibonacciClient, serveFibonacci } from "../generated/fibonacci/index.js";
import { Orders, OrdersClient, OrdersPublisher, OrdersSubscriber, serveOrders } from "../generated/orders/index.js";
import { Points, PointsClient, servePoints } from "../generated/points/index.js";
import { connect, isDeclaredError, isRpcError, type Connection } from "../src/index.js";
import { calculatorHandlers } from "./services/calculator.js";
import { fibonacciHandlers } from "./services/fibonacci.js";
import { createOrdersHandlers } from "./services/orders.js";
import { createPointsHandlers } from "./services/points.js";

async function main(conn: Connection): Promise<void> {
  // The server side: one RpcServer, each service bound with its generated one-line binder.
  const server = conn.server({ prefetch: 16 });
  await serveFibonacci(server, fibonacciHandlers);
  await servePoints(server, createPointsHandlers());
  await serveCalculator(server, calculatorHandlers);

  // The caller side: one client (transport), one generated stub per service.
  const client = await conn.client();
  const fibonacci = new FibonacciClient(client);
  const points = new PointsClient(client);
  const calculator = new CalculatorClient(client);

  console.log(" [x] Requesting fib(30)");
  console.log(` [.] Got ${(await fibonacci.fib({ n: 30 })).value}`);

  for (const [x, y] of [[1, 2], [3, 4], [5, 0]] as const) {
    const { count, centroid } = await points.addPoint({ x, y });
    console.log(` [.] add_point(${x}, ${y}) -> ${count} points, centroid (${centroid.x.toFixed(2)}, ${centroid.y.toFixed(2)})`);
  }

  console.log(` [.] add(1, 2) -> ${(await calculator.add({ a: 1, b: 2 })).sum}`);
  const median = await calculator.summarize({ values: [3, 1, 4, 1, 5, 9, 2, 6], statistic: "median", label: "pi digits" });
  console.log(` [.] summarize(median) -> ${median.value} over ${median.count} values (${median.label})`);

  // A declared error: typed code and data.
  try {
    await calculator.divide({ dividend: 1, divisor: 0 });
  } catch (err) {
    if (isDeclaredError(Calculator.methods.divide, err) && err.code === "division_by_zero") {
      console.log(` [.] divide(1, 0) -> declared error ${err.code} (dividend ${err.data.dividend})`);
    } else throw err;
  }

  // Bad input never leaves the process: the client validates before publishing.
  try {
    await fibonacci.fib({ n: 1000 });
  } catch (err) {
    if (isRpcError(err)) console.log(` [.] fib(1000) -> ${err.code}: ${err.message}`);
    else throw err;
  }

  await client.close();
  await server.close();
  await events(conn);
  await removeIfIdle(conn, [Fibonacci, Points, Calculator, Orders].map((s) => s.queue));
  // The Orders exchange too, unless another queue is bound to it (the broker then refuses: kept).
  const ch = await conn.channel();
  await ch.deleteExchange(Orders.exchange.name, { ifUnused: true }).then(() => ch.close(), () => {});
}

/** Deletes the demo's service queues when nobody consumes them and they are empty; a real deployment keeps its queues. */
async function removeIfIdle(conn: Connection, queues: string[]): Promise<void> {
  const ch = await conn.channel();
  for (const q of queues) {
    const { consumerCount, messageCount } = await ch.checkQueue(q);
    if (consumerCount === 0 && messageCount === 0) await ch.deleteQueue(q, { ifUnused: true, ifEmpty: true });
  }
  await ch.close();
}

/** Typed events: an RPC handler publishes, a consumer group reacts and publishes again, a broadcast subscriber watches one region. */
async function events(conn: Connection): Promise<void> {
  const bus = conn.events();
  const publisher = new OrdersPublisher(bus);
  const subscriber = new OrdersSubscriber(bus);
  const server = conn.server();
  await serveOrders(server, createOrdersHandlers(publisher));
  const orders = new OrdersClient(await conn.client());

  let euShipped!: () => void;
  const done = new Promise<void>((resolve) => (euShipped = resolve));
  let seen = 0;
  await subscriber.onOrderShipped(
    (e, ctx) => {
      console.log(` [.] event ${ctx.event} via ${ctx.routingKey}: ${e.orderId} with ${e.carrier}`);
      if (++seen === 2) euShipped();
    },
    { bindingKey: "orders.eu.*" }, // broadcast, EU only
  );
  // Group "warehouse": each order_placed is handled once however many warehouse processes run.
  const warehouse = await subscriber.onOrderPlaced((order) => publisher.publishOrderShipped({ orderId: order.orderId, region: order.region, carrier: "post" }), {
    group: "warehouse",
  });

  for (const region of ["eu", "us", "eu"] as const) {
    const { orderId } = await orders.placeOrder({ region, items: [{ sku: "tea", quantity: 2 }] });
    console.log(` [x] place_order(${region}) -> ${orderId}`);
  }
  await done;
  try {
    await publisher.publishOrderPlaced({ orderId: "o-x", region: "mars" as "eu", items: [] });
  } catch (err) {
    if (isRpcError(err)) console.log(` [.] publishOrderPlaced(region "mars") -> ${err.code}: ${err.message}`);
    else throw err;
  }

  await server.close();
  await bus.close();
  // The demo removes the durable queues it created; a real warehouse keeps them.
  const ch = await conn.channel();
  for (const q of [warehouse.queue, warehouse.deadLetterQueue, "events.Orders.order_shipped.dead"]) await ch.deleteQueue(q);
  await ch.close();
}


try {
  const conn = await connect();
  try {
    await main(conn);
  } finally {
    await conn.close();
  }
} catch (err) {
  console.error(`demo failed: ${isRpcError(err) ? err.message : String(err)}`);
  process.exitCode = 1;
}
