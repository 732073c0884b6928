/**
 * Faults on a private 3-node RabbitMQ cluster (test/helpers/rabbit-nodes.ts),
 * started once for this file: RPC on a quorum service queue and events on a
 * quorum group queue keep working while one node is stopped (`stop_app`) or
 * killed (`kill -9`), whichever role it plays.
 *
 * Each case runs, at the same time, a client calling Calculator.add every
 * 20 ms (3 s timeout) and a publisher publishing order_placed every 20 ms
 * (confirmed), both on one connection ("the client's node"), against a
 * server and a group subscriber on another connection ("the server's node").
 * Both queues are quorum queues, declared first on the node that must hold
 * their leaders (the leader locator is client-local). Time 0 is when the
 * faulted node drops its first connection. The streams go on until they
 * have been steadily successful for 2 s (or until RECOVERY_BOUND_MS + 2.5 s),
 * then the node is put back, and:
 * - no call settles after its deadline (+ slack), none is left pending;
 * - every publish that resolved was received by the group (no confirmed loss);
 * - calls and publishes are steadily successful again within
 *   RECOVERY_BOUND_MS of the fault, with the node still down.
 * Each case prints its numbers: first success, longest time without one,
 * start of steady success, outcomes, reconnections.
 *
 * The last case puts the client/publisher and both queue leaders on one node
 * and kills it: it reproduces a RabbitMQ quorum-queue problem (a channel whose
 * first publish to the queue happens during the leader election stays broken
 * until the killed node is back; see test/cluster/probe-stale-channel.ts).
 * warren recovers by itself: the client retires a reply channel after 3 calls
 * in a row time out unanswered (recovery: one call timeout), and the event bus
 * replaces a confirm channel at its first nack and sends the event again.
 *
 * Run: npx vitest run --config vitest.cluster.config.ts
 * Skipped, saying why, where no RabbitMQ installation can start private nodes
 * (fails instead with WARREN_REQUIRE_CLUSTER=1).
 */
import { randomBytes } from "node:crypto";
import amqp from "amqplib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CalculatorClient, serveCalculator } from "../../generated/calculator/index.js";
import { OrdersPublisher, OrdersSubscriber } from "../../generated/orders/index.js";
import { calculatorHandlers } from "../../examples/services/calculator.js";
import { connect, formatLogLine, type Connection, type Logger, type RpcError } from "../../src/index.js";
import { clusterUnavailable, startCluster, type RabbitCluster, type RabbitNode } from "../helpers/rabbit-nodes.js";

const CALL_EVERY_MS = 20;
const CALL_TIMEOUT_MS = 3000;
/** How late a call may settle past its deadline (timers on a loaded 2-core machine running three brokers). */
const DEADLINE_SLACK_MS = 500;
/** Calls and publishes must be steadily successful again within this long after the fault, with the node still down (WARREN_CLUSTER_RECOVERY_MS to change). */
const RECOVERY_BOUND_MS = Number(process.env.WARREN_CLUSTER_RECOVERY_MS ?? 10_000);
/** What counts as steady: this long of nothing but successes. */
const STEADY_MS = 2000;
/** Stop watching for recovery after this long (enough to see a steady run that starts at the bound). */
const OBSERVE_MAX_MS = RECOVERY_BOUND_MS + STEADY_MS + 500;
const WARMUP_MS = 1000;

const unavailable = clusterUnavailable();
// In CI set WARREN_REQUIRE_CLUSTER=1, so that a runner without RabbitMQ installed fails instead of skipping.
if (unavailable && process.env.WARREN_REQUIRE_CLUSTER) throw new Error(`cluster tests cannot run: ${unavailable}`);
if (unavailable) console.warn(`cluster tests skipped: ${unavailable}`);

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const run = process.env.WARREN_TEST_RUN ?? "norun";
/** Queue and exchange names in the test-name convention, `__test_<run>_<random>__.<what>`, unique per case. */
const uniqueName = (what: string) => `__test_${run}_${randomBytes(4).toString("hex")}__.${what}`;

/** Resolves with `p`, or with undefined after `ms` (closing after a fault must not hang a test). */
async function within<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

/** One call or publish: when it started and settled (performance.now(), or ms after the fault once rebased), and how. */
interface Attempt {
  start: number;
  settled?: number;
  /** "ok", or the RpcError code. */
  outcome?: string;
}

/** A steady stream of attempts, one every `every` ms. */
class Stream {
  readonly attempts: Attempt[] = [];
  /** performance.now() of the fault. */
  t0 = Number.NaN;
  #timer: NodeJS.Timeout | undefined;

  constructor(private readonly attempt: (i: number) => Promise<unknown>) {}

  start(every: number): void {
    this.#timer = setInterval(() => {
      const a: Attempt = { start: performance.now() };
      this.attempts.push(a);
      this.attempt(this.attempts.length).then(
        () => {
          a.settled = performance.now();
          a.outcome = "ok";
        },
        (err: unknown) => {
          a.settled = performance.now();
          a.outcome = (err as RpcError).code ?? String(err);
        },
      );
    }, every);
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  /** True when the attempts started in the STEADY_MS up to `lagMs` ago (all after the fault) all succeeded. */
  steadyNow(lagMs: number): boolean {
    const end = performance.now() - this.t0 - lagMs;
    if (end - STEADY_MS < 0) return false;
    const recent = this.attempts.filter((a) => a.start - this.t0 >= end - STEADY_MS && a.start - this.t0 < end);
    return recent.length > 0 && recent.every((a) => a.outcome === "ok");
  }

  /** The attempts with times in ms after the fault. */
  rebased(): Attempt[] {
    return this.attempts.map((a) => ({
      start: Math.round(a.start - this.t0),
      ...(a.settled === undefined ? {} : { settled: Math.round(a.settled - this.t0) }),
      ...(a.outcome === undefined ? {} : { outcome: a.outcome }),
    }));
  }
}

/** What a stream did after the fault (ms after it). */
interface Recovery {
  /** Outcomes of the attempts started after the fault. */
  outcomes: Record<string, number>;
  /** First success after the fault (when it settled). */
  firstOk: number | undefined;
  /** Longest time without any success, from the fault until the node was put back: the outage as callers see it. */
  longestGap: number;
  /** Start of the final run of successes before the node was put back (at least STEADY_MS long); undefined if none. */
  steadyFrom: number | undefined;
  /** When not steady before the node was put back: start of the final run of successes after that. */
  steadyAfterRestore: number | undefined;
}

function recovery(attempts: Attempt[], restoreAt: number): Recovery {
  const after = attempts.filter((a) => a.start >= 0);
  const outcomes: Record<string, number> = {};
  for (const a of after) outcomes[a.outcome ?? "unsettled"] = (outcomes[a.outcome ?? "unsettled"] ?? 0) + 1;
  const oks = attempts.filter((a) => a.outcome === "ok" && a.settled! >= 0).map((a) => a.settled!);
  const firstOk = oks.length ? Math.min(...oks) : undefined;
  let longestGap = 0;
  let previous = 0;
  for (const t of [...oks.filter((t) => t < restoreAt), restoreAt].sort((x, y) => x - y)) {
    longestGap = Math.max(longestGap, t - previous);
    previous = t;
  }
  /** Start of the final all-ok run of `list`, if it spans at least `min` ms. */
  const finalRun = (list: Attempt[], min: number) => {
    let from: Attempt | undefined;
    for (const a of list) {
      if (a.outcome === "ok") from ??= a;
      else from = undefined;
    }
    const last = list.at(-1);
    return from && last && last.start - from.start >= min ? from.start : undefined;
  };
  const steadyFrom = finalRun(after.filter((a) => a.start < restoreAt), STEADY_MS - 2 * CALL_EVERY_MS);
  const steadyAfterRestore = steadyFrom === undefined ? finalRun(after, 500) : undefined;
  return { outcomes, firstOk, longestGap, steadyFrom, steadyAfterRestore };
}

interface CaseResult {
  title: string;
  /** Wall time of the case. */
  ms: number;
  rpc: Recovery & { calls: number; late: { start: number; lateBy: number; outcome?: string }[] };
  events: Recovery & { publishes: number; confirmed: number; received: number; lost: string[]; unsettled: number };
  /** How long putting the node back took. */
  restoreMs: number;
  /** Timestamped lines: reconnections, warren's log lines, the fault's steps. */
  notes: string[];
}

type Role = "leader" | "client" | "server" | "client+leader";
type Fault = "stop_app" | "kill9";

const results: CaseResult[] = [];
const fileStarted = performance.now();

function describeRecovery(r: Recovery): string {
  const steady = r.steadyFrom !== undefined ? `steady from +${r.steadyFrom}` : `never steady while down (steady ${r.steadyAfterRestore === undefined ? "never" : `from +${r.steadyAfterRestore}`} once it was back)`;
  return `first ok +${r.firstOk ?? "never"}, longest without success ${r.longestGap}, ${steady}; outcomes ${JSON.stringify(r.outcomes)}`;
}

describe.skipIf(unavailable !== undefined)("a private 3-node cluster", () => {
  let cluster: RabbitCluster;
  let n1: RabbitNode, n2: RabbitNode, n3: RabbitNode;

  beforeAll(async () => {
    cluster = await startCluster(3);
    [n1, n2, n3] = cluster.nodes as [RabbitNode, RabbitNode, RabbitNode];
    console.log(`[cluster] 3 nodes running after ${(cluster.startMs / 1000).toFixed(1)} s: ${cluster.nodes.map((n) => `${n.name} :${n.port}`).join(", ")}`);
  }, 180_000);

  afterAll(async () => {
    const stopping = performance.now();
    await cluster?.stop();
    console.log(`\n[cluster] summary (ms after the fault; "steady": nothing but successes from then on, with the node still down)`);
    for (const r of results) {
      const short = (x: Recovery) => `first ok ${x.firstOk ?? "never"}, gap ${x.longestGap}, steady ${x.steadyFrom ?? `never (${x.steadyAfterRestore ?? "never"} once back)`}`;
      console.log(`  ${r.title.padEnd(55)} ${(r.ms / 1000).toFixed(1).padStart(5)} s (node back in ${(r.restoreMs / 1000).toFixed(1)} s) | RPC ${short(r.rpc)}, late ${r.rpc.late.length} | events ${short(r.events)}, lost ${r.events.lost.length}`);
    }
    console.log(
      `[cluster] cluster start ${((cluster?.startMs ?? 0) / 1000).toFixed(1)} s, cases ${(results.reduce((s, r) => s + r.ms, 0) / 1000).toFixed(1)} s, stop ${((performance.now() - stopping) / 1000).toFixed(1)} s, file total ${((performance.now() - fileStarted) / 1000).toFixed(1)} s`,
    );
  }, 60_000);

  /** Runs one fault case and returns what happened; the `it`s below assert on it. */
  async function faultCase(title: string, fault: Fault, role: Role): Promise<CaseResult> {
    const began = performance.now();
    const noted: { at: number; text: string }[] = [];
    const note = (text: string) => noted.push({ at: performance.now(), text });
    // Layout: client and publisher on n1, server and subscriber on n2, leaders on n3 (on n1 for "client+leader").
    const clientNode = n1;
    const serverNode = n2;
    const leaderNode = role === "client+leader" ? n1 : n3;
    const target = { leader: n3, client: n1, server: n2, "client+leader": n1 }[role];
    const logger = (who: string): Logger => ({ warn: (f, m) => note(`${who}: ${formatLogLine(f, m)}`), error: (f, m) => note(`${who} ERROR: ${formatLogLine(f, m)}`) });
    const watch = (conn: Connection, who: string) => {
      conn.on("disconnected", () => note(`${who}: disconnected`));
      conn.on("connected", () => note(`${who}: connected to ${conn.url}`));
    };

    const rpcQueue = uniqueName("calc");
    const exchange = uniqueName("orders");
    const groupQueue = uniqueName("orders.billing");
    const declarer = await amqp.connect(leaderNode.amqpUrl);
    declarer.on("error", () => {}); // a connection error must reject the declare below, not throw inside amqplib
    try {
      const declared = (async () => {
        const ch = await declarer.createChannel();
        for (const q of [rpcQueue, groupQueue]) await ch.assertQueue(q, { durable: true, arguments: { "x-queue-type": "quorum" } });
        return true;
      })();
      expect(await within(declared, 15_000), "quorum queues declared on the leaders' node").toBe(true);
    } finally {
      await within(declarer.close().catch(() => {}), 5000);
    }

    const serverConn = await connect(cluster.urls(serverNode), { name: "cluster-server", logger: logger("server"), connectTimeoutMs: 2000 });
    const clientConn = await connect(cluster.urls(clientNode), { name: "cluster-client", logger: logger("client"), connectTimeoutMs: 2000 });
    watch(serverConn, "server");
    watch(clientConn, "client");
    const server = serverConn.server({ prefetch: 64 });
    const serverBus = serverConn.events({ exchanges: { Orders: exchange } });
    const clientBus = clientConn.events({ exchanges: { Orders: exchange } });
    const received = new Set<string>();
    let calc!: CalculatorClient;
    let publisher!: OrdersPublisher;
    const rpc = new Stream((i) =>
      calc.add({ a: i, b: 1 }, { timeoutMs: CALL_TIMEOUT_MS }).then(({ sum }) => {
        if (sum !== i + 1) throw new Error(`wrong sum ${sum} for ${i} + 1`);
      }),
    );
    const events = new Stream((i) => publisher.publishOrderPlaced({ orderId: `o-${i}`, region: "eu", items: [{ sku: "sku-1", quantity: 1 }] }));
    let T0 = Number.NaN;
    let faulted: Promise<void> | undefined;
    let restored = false;
    let restoreAt = Number.POSITIVE_INFINITY;
    let restoreMs = Number.NaN;
    const restore = async () => {
      const restoring = performance.now();
      if (fault === "kill9") await target.restart();
      else await target.startApp();
      restored = true;
      restoreMs = performance.now() - restoring;
      note(`${target.name} is back`);
    };
    try {
      await serveCalculator(server, calculatorHandlers, { queue: rpcQueue, queueType: "quorum" });
      await new OrdersSubscriber(serverBus).onOrderPlaced((order) => void received.add(order.orderId), {
        group: "billing",
        queue: groupQueue,
        queueType: "quorum",
        prefetch: 64,
      });
      calc = new CalculatorClient(await clientConn.client({ queues: { Calculator: rpcQueue } }));
      publisher = new OrdersPublisher(clientBus);
      const leaders = await cluster.leadersOf([rpcQueue, groupQueue]);
      expect(leaders.map((l) => l?.name), "quorum leaders on the intended node").toEqual([leaderNode.name, leaderNode.name]);

      // Time 0 is when the target drops its first connection (a sentinel of ours, or the client's or the
      // server's): at once for kill -9; for stop_app once the CLI has reached the node, which takes seconds
      // on a busy machine.
      const sentinel = await amqp.connect(target.amqpUrl);
      sentinel.on("error", () => {});
      const lost = new Promise<void>((resolve) => {
        sentinel.once("close", () => resolve());
        clientConn.once("disconnected", () => resolve());
        serverConn.once("disconnected", () => resolve());
      });

      rpc.start(CALL_EVERY_MS);
      events.start(CALL_EVERY_MS);
      await sleep(WARMUP_MS);

      note(`${fault === "kill9" ? "kill -9" : "stop_app"} of ${target.name}`);
      const faultStarted = performance.now();
      faulted = fault === "kill9" ? target.kill9() : target.stopApp();
      await Promise.race([lost, faulted.then(() => sleep(5000))]);
      T0 = performance.now();
      rpc.t0 = events.t0 = T0;
      note(`${target.name} dropped its connections`);
      while (performance.now() - T0 < OBSERVE_MAX_MS && !(rpc.steadyNow(300) && events.steadyNow(300))) await sleep(100);
      await faulted;
      restoreAt = Math.round(performance.now() - T0);
      note(`putting ${target.name} back`);
      if (rpc.steadyNow(300) && events.steadyNow(300)) {
        // Recovered: stop now and let everything settle while the node comes back.
        rpc.stop();
        events.stop();
        await restore();
      } else {
        // Not recovered: keep going through the restoration, to see whether and when the node's return helps.
        await restore();
        await sleep(1500);
        rpc.stop();
        events.stop();
      }
      // Every call settles by its deadline; then give deliveries of confirmed events time to arrive.
      await sleep(Math.max(0, CALL_TIMEOUT_MS + DEADLINE_SLACK_MS - (performance.now() - T0 - restoreAt)));
      const confirmedIds = () => events.attempts.flatMap((a, i) => (a.outcome === "ok" ? [`o-${i + 1}`] : []));
      for (let i = 0; i < 100 && confirmedIds().some((id) => !received.has(id)); i++) await sleep(100);

      const calls = rpc.rebased();
      const publishes = events.rebased();
      // Before the fault everything worked (what was in flight at the fault is judged with the rest). The fault starts
      // before T0 (the first connection's loss): what failed between the two failed because of it.
      const before = Math.round(faultStarted - T0);
      const warmCalls = calls.filter((a) => a.settled !== undefined && a.settled < before);
      expect(warmCalls.length, "calls before the fault").toBeGreaterThan(10);
      expect(warmCalls.filter((a) => a.outcome !== "ok"), "warm-up calls that failed").toEqual([]);
      expect(publishes.filter((a) => a.settled !== undefined && a.settled < before && a.outcome !== "ok"), "warm-up publishes that failed").toEqual([]);
      const confirmed = confirmedIds();
      return {
        title,
        ms: 0,
        rpc: {
          ...recovery(calls, restoreAt),
          calls: calls.length,
          late: calls
            .filter((a) => a.settled === undefined || a.settled - a.start > CALL_TIMEOUT_MS + DEADLINE_SLACK_MS)
            .map((a) => ({ start: a.start, lateBy: (a.settled ?? Number.POSITIVE_INFINITY) - a.start - CALL_TIMEOUT_MS, ...(a.outcome ? { outcome: a.outcome } : {}) })),
        },
        events: {
          ...recovery(publishes, restoreAt),
          publishes: publishes.length,
          confirmed: confirmed.length,
          received: received.size,
          lost: confirmed.filter((id) => !received.has(id)),
          unsettled: publishes.filter((a) => a.settled === undefined).length,
        },
        restoreMs,
        notes: [],
      };
    } finally {
      rpc.stop();
      events.stop();
      // Each close is timed; none may hang the run.
      const timed = async (what: string, p: Promise<unknown>) => {
        const t = performance.now();
        const outcome = await within(p.then(() => "closed", (err: unknown) => `failed: ${(err as Error).message}`), 15_000);
        const ms = Math.round(performance.now() - t);
        if (outcome !== "closed" || ms > 1000) note(`closing ${what}: ${outcome ?? "not done"} after ${ms} ms`);
      };
      await Promise.all([timed("server", server.close()), timed("subscriber bus", serverBus.close()), timed("publisher bus", clientBus.close())]);
      await Promise.all([timed("client connection", clientConn.close()), timed("server connection", serverConn.close())]);
      // Whatever happened, the node must be back for the next case.
      if (faulted !== undefined && !restored) {
        await faulted.catch(() => {});
        await restore().catch((err: unknown) => console.error(`could not put ${target.name} back: ${(err as Error).message}`));
      }
      const base = Number.isNaN(T0) ? began : T0;
      const lines = noted.map((n) => `${String(Math.round(n.at - base)).padStart(6)} ${n.text}`);
      const result = results.find((r) => r.title === title);
      if (result) result.notes.push(...lines);
      else pendingNotes.set(title, lines);
    }
  }
  const pendingNotes = new Map<string, string[]>();

  /** Prints a case's numbers. */
  function report(result: CaseResult): void {
    const { rpc, events } = result;
    console.log(
      [
        `[cluster] ${result.title}: ${(result.ms / 1000).toFixed(1)} s, node back in ${(result.restoreMs / 1000).toFixed(1)} s (times in ms after the fault)`,
        `  RPC:    ${rpc.calls} calls; ${describeRecovery(rpc)}; settled late ${rpc.late.length}${rpc.late.length ? ` (worst ${Math.max(...rpc.late.map((l) => l.lateBy))} ms past the timeout)` : ""}`,
        `  events: ${events.publishes} publishes, ${events.confirmed} confirmed, ${events.received} received; ${describeRecovery(events)}; confirmed but lost ${events.lost.length}, unsettled ${events.unsettled}`,
        ...result.notes.map((n) => `    ${n}`),
      ].join("\n"),
    );
  }

  const cases: { title: string; fault: Fault; role: Role }[] = [
    { title: "stop_app of the quorum leaders' node", fault: "stop_app", role: "leader" },
    { title: "kill -9 of the quorum leaders' node", fault: "kill9", role: "leader" },
    { title: "stop_app of the client's/publisher's node", fault: "stop_app", role: "client" },
    { title: "kill -9 of the client's/publisher's node", fault: "kill9", role: "client" },
    { title: "stop_app of the server's/subscriber's node", fault: "stop_app", role: "server" },
    { title: "kill -9 of the server's/subscriber's node", fault: "kill9", role: "server" },
    { title: "stop_app of the client's node, holding the leaders", fault: "stop_app", role: "client+leader" },
    { title: "kill -9 of the client's node, holding the leaders", fault: "kill9", role: "client+leader" },
  ];

  // WARREN_CLUSTER_CASES=<text>: only the cases whose title contains it; WARREN_CLUSTER_REPEAT=<n>: each n times.
  const only = process.env.WARREN_CLUSTER_CASES;
  const repeat = Number(process.env.WARREN_CLUSTER_REPEAT ?? 1);
  const chosen = cases.filter((c) => only === undefined || c.title.includes(only));
  for (const c of Array.from({ length: repeat }, (_, i) => chosen.map((x) => ({ ...x, title: repeat > 1 ? `${x.title} #${i + 1}` : x.title }))).flat()) {
    describe(c.title, () => {
      let result: CaseResult;
      beforeAll(async () => {
        const began = performance.now();
        try {
          result = await faultCase(c.title, c.fault, c.role);
        } finally {
          const lines = pendingNotes.get(c.title);
          if (lines && result === undefined) console.log(`[cluster] ${c.title} failed; its notes:\n${lines.map((l) => `    ${l}`).join("\n")}`);
        }
        result.ms = performance.now() - began;
        result.notes.push(...(pendingNotes.get(c.title) ?? []));
        results.push(result);
        report(result);
      }, 150_000);

      it("RPC: every call settles by its deadline, and calls succeed again while the node is down", () => {
        expect(result.rpc.late, "calls settled past their deadline (+ slack), or never").toEqual([]);
        expect(result.rpc.firstOk, "a call succeeded after the fault").toBeDefined();
        expect(result.rpc.steadyFrom, `calls steadily succeed within ${RECOVERY_BOUND_MS} ms of the fault, the node still down`).toBeDefined();
        expect(result.rpc.steadyFrom!).toBeLessThanOrEqual(RECOVERY_BOUND_MS);
      });

      it("events: no confirmed event is lost, and publishes succeed again while the node is down", () => {
        expect(result.events.lost, "confirmed events never received").toEqual([]);
        expect(result.events.firstOk, "a publish was confirmed after the fault").toBeDefined();
        expect(result.events.steadyFrom, `publishes steadily confirmed within ${RECOVERY_BOUND_MS} ms of the fault, the node still down`).toBeDefined();
        expect(result.events.steadyFrom!).toBeLessThanOrEqual(RECOVERY_BOUND_MS);
      });
    });
  }
});
