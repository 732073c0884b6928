/**
 * Probe, in plain amqplib (no warren), of what a channel on a surviving node
 * does with publishes to a quorum queue whose leader's node was just killed.
 *
 * Usage: npx tsx test/cluster/probe-stale-channel.ts [downSeconds=20] [fault=kill9|stop_app]
 *
 * Layout: a private 3-node cluster (A, B, C); quorum queue Q declared from A,
 * so its leader is on A. Before the fault, channels on B and C publish to Q.
 * At T0, A is killed (kill -9) or its app stopped (T0: A's AMQP connection is lost). New connections to B are
 * then opened at several offsets after T0 (warren's reconnection lands ~100 ms
 * after the loss), each with a plain channel (mandatory publishes, like
 * warren's RPC requests) and a confirm channel (like warren's events); the
 * first connection also opens a pair of channels much later (a new channel on
 * an old connection). Every channel publishes one message every 100 ms. Then
 * the candidate fixes, each on its own connection to B opened at +100 ms:
 * - `replace-on-nack`: a confirm channel replaced by a new one (same
 *   connection) at its first nack;
 * - `reopen-after-3-timeouts`: a plain channel replaced once 3 publishes in a
 *   row have not arrived 3 s after they were sent (what a client can see:
 *   calls timing out while connected);
 * - `first-publish-late`: a plain channel opened at +100 ms whose first
 *   publish waits until +1000 ms (is it the open or the first publish that
 *   goes stale?).
 * After `downSeconds` A is started again; publishing goes on for 8 s more.
 * A consumer on C, connected before the fault, records arrivals; the queue
 * is drained at the end. Prints, per channel: publishes, acks / nacks /
 * returns, arrivals, the windows (ms after T0) whose publishes never arrived,
 * and the queue's lines from B's and C's logs.
 */
import amqp, { type Channel, type ChannelModel, type ConfirmChannel, type ConsumeMessage } from "amqplib";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { startCluster, type RabbitNode } from "../helpers/rabbit-nodes.js";

const downSeconds = Number(process.argv[2] ?? 20);
const fault = (process.argv[3] ?? "kill9") as "kill9" | "stop_app";
const PERIOD_MS = 100;
const OFFSETS_MS = (process.env.PROBE_OFFSETS ?? "50,100,150,200,250,300,400,600,1000,2000,5000,11000").split(",").map(Number);
const LATE_CHANNEL_MS = 15_000;
const TIMEOUT_MS = 3000;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

interface Sent {
  at: number; // ms after T0 (negative: before the fault)
  outcome?: "ack" | "nack" | "returned" | "error";
  settledAt?: number;
  arrivedAt?: number;
  channel: number; // which channel of the probe (0, then 1, 2… after replacements)
}

type Strategy = "none" | "replace-on-nack" | "reopen-after-3-timeouts";

interface Probe {
  label: string;
  openedAt: number;
  confirm: boolean;
  strategy: Strategy;
  sent: Sent[];
  channels: { openedAt: number; closedAt?: number; reason?: string }[];
  timer?: NodeJS.Timeout;
}

const cluster = await startCluster(3, { verbose: true });
const [A, B, C] = cluster.nodes as [RabbitNode, RabbitNode, RabbitNode];
const conns: ChannelModel[] = [];
const probes = new Map<string, Probe>();
let T0 = performance.now();
let wallT0 = Date.now();
const now = () => Math.round(performance.now() - T0);

async function open(node: RabbitNode): Promise<ChannelModel> {
  const c = await amqp.connect(`${node.amqpUrl}?heartbeat=10`);
  c.on("error", () => {});
  conns.push(c);
  return c;
}

/**
 * Opens a probe on `conn`: a channel publishing to `queue` every PERIOD_MS
 * (from `firstPublishAt` on), replaced per `strategy`.
 */
async function startProbe(conn: ChannelModel, label: string, confirm: boolean, queue: string, strategy: Strategy = "none", firstPublishAt?: number): Promise<void> {
  const probe: Probe = { label, openedAt: now(), confirm, strategy, sent: [], channels: [] };
  probes.set(label, probe);
  let ch: Channel | ConfirmChannel | undefined;
  let current = -1;
  let replacing = false;

  const openChannel = async () => {
    const index = probe.channels.length;
    const record: Probe["channels"][number] = { openedAt: now() };
    probe.channels.push(record);
    const opened = confirm ? await conn.createConfirmChannel() : await conn.createChannel();
    opened.on("error", () => {});
    opened.on("close", (err?: Error) => {
      record.closedAt ??= now();
      record.reason ??= err?.message ?? "closed";
    });
    opened.on("return", (msg: ConsumeMessage) => {
      const s = probe.sent[Number(String(msg.properties.messageId).split(":")[1])];
      if (s) {
        s.outcome = "returned";
        s.settledAt = now();
      }
    });
    ch = opened;
    current = index;
  };

  const replace = (why: string) => {
    if (replacing) return;
    replacing = true;
    const old = ch;
    const record = probe.channels[current]!;
    record.closedAt = now();
    record.reason = `replaced: ${why}`;
    ch = undefined;
    void old?.close().catch(() => {});
    void openChannel().finally(() => (replacing = false));
  };

  const publishOne = () => {
    if (ch === undefined) return; // being replaced: skip this tick
    const seq = probe.sent.length;
    const s: Sent = { at: now(), channel: current };
    probe.sent.push(s);
    const props = { messageId: `${label}:${seq}`, mandatory: true, headers: { at: s.at } };
    try {
      if (confirm) {
        const mine = current;
        (ch as ConfirmChannel).publish("", queue, Buffer.from(label), props, (err) => {
          s.outcome ??= err ? "nack" : "ack";
          s.settledAt ??= now();
          if (err && strategy === "replace-on-nack" && mine === current) replace(`nack at ${now()} ms`);
        });
      } else ch.publish("", queue, Buffer.from(label), props);
    } catch {
      s.outcome = "error";
    }
    if (strategy === "reopen-after-3-timeouts") {
      // What a client sees: the last 3 calls sent on this channel, all older than the timeout, none answered.
      const mine = probe.sent.filter((x) => x.channel === current && now() - x.at >= TIMEOUT_MS).slice(-3);
      if (mine.length === 3 && mine.every((x) => x.arrivedAt === undefined)) replace(`3 timeouts at ${now()} ms`);
    }
  };

  try {
    await openChannel();
  } catch (err) {
    probe.channels.push({ openedAt: now(), closedAt: now(), reason: `open failed: ${(err as Error).message}` });
    return;
  }
  if (firstPublishAt !== undefined) await sleep(firstPublishAt - now());
  publishOne();
  probe.timer = setInterval(publishOne, PERIOD_MS);
}

function stopAll(): void {
  for (const p of probes.values()) clearInterval(p.timer);
}

/** Contiguous windows of `sent` matching `pred`, as "from..to (n)". */
function windows(sent: Sent[], pred: (s: Sent) => boolean): string {
  const out: string[] = [];
  let start: Sent | undefined;
  let last: Sent | undefined;
  let n = 0;
  for (const s of sent) {
    if (pred(s)) {
      start ??= s;
      last = s;
      n++;
    } else if (start) {
      out.push(`${start.at}..${last!.at} (${n})`);
      start = undefined;
      n = 0;
    }
  }
  if (start) out.push(`${start.at}..${last!.at} (${n})`);
  return out.join(", ") || "-";
}

/** The log lines of `node` about `queue` (and node up/down) since T0 - 1 s, with ms after T0. */
function queueLog(node: RabbitNode, queue: string): string[] {
  let text = "";
  try {
    text = fs.readFileSync(path.join(node.dir, "log", `${node.name}.log`), "utf8");
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const line of text.split("\n")) {
    const m = /^(\S+ \S+) \[(\w+)\] <[^>]+> (.*)$/.exec(line);
    if (!m) continue;
    const t = Date.parse(m[1]!.replace(" ", "T").replace(/(\.\d{3})\d*/, "$1"));
    if (!(t >= wallT0 - 1000) || !(m[3]!.includes(queue) || /node .* (up|down)|nodedown|nodeup/i.test(m[3]!))) continue;
    out.push(`${String(t - wallT0).padStart(6)} ms [${m[2]}] ${m[3]!.slice(0, 220)}`);
  }
  return out;
}

try {
  const queue = `__probe_${randomBytes(4).toString("hex")}__.stale`;
  const onA = await open(A);
  const declare = await onA.createChannel();
  await declare.assertQueue(queue, { durable: true, arguments: { "x-queue-type": "quorum" } });
  const leader = await cluster.leaderOf(queue);
  console.log(`queue ${queue}: leader on ${leader?.name} (A is ${A.name}); fault: ${fault} of A; A down for ${downSeconds} s`);

  // A consumer on C, connected before the fault, records arrivals.
  const onC = await open(C);
  const consumerCh = await onC.createChannel();
  await consumerCh.prefetch(1000);
  let consumerClosed: string | undefined;
  consumerCh.on("close", (err?: Error) => (consumerClosed = `${now()} ms: ${err?.message ?? "closed"}`));
  await consumerCh.consume(
    queue,
    (msg) => {
      if (msg === null) {
        consumerClosed ??= `${now()} ms: cancelled by the broker`;
        return;
      }
      const [label, seq] = String(msg.properties.messageId).split(":");
      const s = probes.get(label!)?.sent[Number(seq)];
      if (s) s.arrivedAt ??= now();
    },
    { noAck: true },
  );

  // Channels publishing since before the fault, on B and on C (and on A, which dies with it).
  const onB = await open(B);
  await startProbe(onB, "B-before-plain", false, queue);
  await startProbe(onB, "B-before-confirm", true, queue);
  const onC2 = await open(C);
  await startProbe(onC2, "C-before-plain", false, queue);
  await startProbe(onC2, "C-before-confirm", true, queue);
  await startProbe(onA, "A-before-confirm", true, queue);
  await sleep(1000);

  // The fault. Time 0 is when A's connection is lost (at once for kill -9; for
  // stop_app, once the CLI has reached the node and the app closes its
  // connections), and every time is re-based on it.
  const lost = new Promise<void>((resolve) => onA.once("close", () => resolve()));
  const faulted = fault === "kill9" ? A.kill9() : A.stopApp();
  await lost;
  const rebase = Math.round(performance.now() - T0);
  for (const p of probes.values()) {
    p.openedAt -= rebase;
    for (const c of p.channels) c.openedAt -= rebase;
    for (const s of p.sent) {
      s.at -= rebase;
      if (s.settledAt !== undefined) s.settledAt -= rebase;
      if (s.arrivedAt !== undefined) s.arrivedAt -= rebase;
    }
  }
  T0 += rebase;
  wallT0 = Date.now();
  void faulted.then(() => console.log(`${now()} ms: A ${fault === "kill9" ? "killed" : "app stopped"} (time 0: A's connection lost)`));

  const at = async (ms: number) => sleep(ms - now());
  const tasks: Promise<void>[] = OFFSETS_MS.map(async (offset) => {
    await at(offset);
    const conn = await open(B);
    await Promise.all([startProbe(conn, `B+${offset}-plain`, false, queue), startProbe(conn, `B+${offset}-confirm`, true, queue)]);
    if (offset === 100) {
      await at(LATE_CHANNEL_MS);
      await startProbe(conn, `B+${offset}-conn/late-ch+${LATE_CHANNEL_MS}-plain`, false, queue);
      await startProbe(conn, `B+${offset}-conn/late-ch+${LATE_CHANNEL_MS}-confirm`, true, queue);
    }
  });
  tasks.push(
    (async () => {
      await at(100);
      const [c1, c2, c3] = await Promise.all([open(B), open(B), open(B)]);
      await Promise.all([
        startProbe(c1, "FIX B+100 confirm replace-on-nack", true, queue, "replace-on-nack"),
        startProbe(c2, "FIX B+100 plain reopen-after-3-timeouts", false, queue, "reopen-after-3-timeouts"),
        startProbe(c3, "B+100-open first-publish+1000 plain", false, queue, "none", 1000),
      ]);
    })(),
  );
  await at(4000);
  try {
    const status = await cluster.quorumStatus(queue, C);
    console.log(`${now()} ms: quorum status via C: ${status.map((s) => `${s.node}=${s.state}(term ${s.term})`).join(", ")}`);
  } catch (err) {
    console.log(`${now()} ms: quorum status failed: ${(err as Error).message}`);
  }
  await Promise.all(tasks);
  await faulted;
  await at(downSeconds * 1000);
  console.log(`${now()} ms: starting A again`);
  if (fault === "kill9") await A.restart();
  else await A.startApp();
  const back = now();
  console.log(`${back} ms: A is back`);
  await sleep(8000);
  stopAll();
  await sleep(3000);
  const drain = await (await open(C)).createChannel();
  let drained = 0;
  for (;;) {
    const msg = await drain.get(queue, { noAck: true });
    if (msg === false) break;
    drained++;
    const [label, seq] = String(msg.properties.messageId).split(":");
    const s = probes.get(label!)?.sent[Number(seq)];
    if (s) s.arrivedAt ??= Number.POSITIVE_INFINITY;
  }
  console.log(`consumer on C: ${consumerClosed ?? "ran throughout"}; ${drained} message(s) left for the drain`);
  console.log(`\nA down from 0 to ${back} ms (restart began at ${downSeconds * 1000}). Per channel (times in ms after the fault):`);
  for (const p of [...probes.values()].sort((x, y) => x.openedAt - y.openedAt)) {
    const sent = p.sent;
    const count = (o: Sent["outcome"]) => sent.filter((s) => s.outcome === o).length;
    const arrived = sent.filter((s) => s.arrivedAt !== undefined);
    const lostAcked = sent.filter((s) => s.outcome === "ack" && s.arrivedAt === undefined).length;
    const lastLost = [...sent].reverse().find((s) => s.arrivedAt === undefined && s.outcome !== "error");
    const firstAfter = sent.find((s) => s.at >= 0 && s.arrivedAt !== undefined && (lastLost === undefined || s.at > lastLost.at));
    console.log(
      [
        `${p.label.padEnd(44)} opened ${String(p.openedAt).padStart(6)}`,
        `sent ${sent.length}`,
        p.confirm ? `ack ${count("ack")} nack ${count("nack")} unsettled ${sent.filter((s) => s.outcome === undefined).length}` : `returned ${count("returned")}`,
        `arrived ${arrived.length}`,
        p.confirm ? `acked-but-lost ${lostAcked}` : "",
        lastLost ? `steady from the publish at ${firstAfter?.at ?? "never"}` : "no loss",
      ]
        .filter(Boolean)
        .join(" | "),
    );
    console.log(`    not arrived: ${windows(sent, (s) => s.arrivedAt === undefined)}`);
    if (p.confirm) {
      const nacks = sent.filter((s) => s.outcome === "nack").map((s) => s.settledAt! - s.at).sort((x, y) => x - y);
      console.log(`    nacked:      ${windows(sent, (s) => s.outcome === "nack")}${nacks.length ? `; nack after p50 ${nacks[nacks.length >> 1]} max ${nacks.at(-1)} ms` : ""}`);
    }
    if (p.channels.length > 1 || p.channels[0]?.closedAt !== undefined) {
      console.log(`    channels:    ${p.channels.map((c) => `opened ${c.openedAt}${c.closedAt !== undefined ? ` closed ${c.closedAt} (${c.reason})` : ""}`).join("; ")}`);
    }
  }
  for (const node of [B, C]) {
    console.log(`\n${node.name} log (queue ${queue}, node up/down), ms after the fault:`);
    for (const line of queueLog(node, queue)) console.log(`  ${line}`);
  }
} finally {
  stopAll();
  for (const c of conns) await c.close().catch(() => {});
  await cluster.stop();
}
