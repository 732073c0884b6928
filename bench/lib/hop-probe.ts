/**
 * Hop probe, loaded with `node --import` into the benchmark's processes by
 * bench/hops.ts (never by warren itself). A "hop" is one process's turn on the
 * critical path of a call at one in flight: from the moment a socket read
 * reaches JavaScript to the next socket write. It is split in three at the
 * points every implementation shares, amqplib's channel:
 *
 * - `in`: socket read to `dispatchMessage` (amqplib parses frames and properties);
 * - `own`: `dispatchMessage` to `sendMessage` (the implementation's code, plus the
 *   benchmark driver on the client side);
 * - `out`: `sendMessage` to the socket write (amqplib encodes and queues; the
 *   write may wait for a later tick).
 *
 * On exit each process appends one JSON line per busy socket to the file named
 * by WARREN_HOPS_OUT: `{ pid, role, n, in, own, out, total }`, each segment as
 * `{ p50, mean }` in µs.
 */
import { appendFileSync } from "node:fs";
import { createRequire } from "node:module";
import net from "node:net";
import path from "node:path";

interface Marks {
  read: bigint;
  dispatch?: bigint;
  send?: bigint;
}
interface Samples {
  in: number[];
  own: number[];
  out: number[];
  total: number[];
}
type Probed = net.Socket & { hopMarks?: Marks | undefined; hopSamples?: Samples };
type Patchable = Record<string, (this: any, ...args: any[]) => unknown>;

const out = process.env.WARREN_HOPS_OUT;
const sockets: Probed[] = [];
const require = createRequire(path.join(process.cwd(), "package.json"));
const amqplibDir = path.dirname(require.resolve("amqplib"));
const { BaseChannel, Channel } = require(path.join(amqplibDir, "lib/channel.js")) as { BaseChannel: { prototype: Patchable }; Channel: { prototype: Patchable } };
const socketProto = net.Socket.prototype as unknown as Patchable;

/** Wraps `proto[name]` so `before` runs first with the same `this`. */
function wrap(proto: Patchable, name: string, before: (self: any, args: unknown[]) => void): void {
  const original = proto[name]!;
  proto[name] = function (this: unknown, ...args: unknown[]) {
    before(this, args);
    return original.apply(this, args);
  };
}

wrap(socketProto, "push", (socket: Probed, [chunk]) => {
  if (chunk) socket.hopMarks = { read: process.hrtime.bigint() };
});
wrap(BaseChannel.prototype, "dispatchMessage", (channel: { connection: { stream: Probed } }) => {
  const marks = channel.connection.stream.hopMarks;
  if (marks !== undefined && marks.dispatch === undefined) marks.dispatch = process.hrtime.bigint();
});
wrap(Channel.prototype, "sendMessage", (channel: { connection: { stream: Probed } }) => {
  const marks = channel.connection.stream.hopMarks;
  if (marks !== undefined && marks.send === undefined) marks.send = process.hrtime.bigint();
});
// Both `write` and `writev` on a net.Socket end in `_writeGeneric`.
wrap(socketProto, "_writeGeneric", (socket: Probed) => {
  const marks = socket.hopMarks;
  socket.hopMarks = undefined;
  if (marks?.dispatch === undefined || marks.send === undefined) return;
  const now = process.hrtime.bigint();
  let samples = socket.hopSamples;
  if (samples === undefined) {
    samples = socket.hopSamples = { in: [], own: [], out: [], total: [] };
    sockets.push(socket);
  }
  const us = (from: bigint, to: bigint) => Number(to - from) / 1000;
  samples.in.push(us(marks.read, marks.dispatch));
  samples.own.push(us(marks.dispatch, marks.send));
  samples.out.push(us(marks.send, now));
  samples.total.push(us(marks.read, now));
});

function summary(values: number[]): { p50: number; mean: number } {
  const sorted = [...values].sort((a, b) => a - b);
  const mean = values.reduce((s, v) => s + v, 0) / values.length;
  return { p50: Number(sorted[Math.floor((sorted.length - 1) / 2)]!.toFixed(1)), mean: Number(mean.toFixed(1)) };
}

process.on("exit", () => {
  if (out === undefined) return;
  const role = process.argv[1]?.includes("server-child") ? "server" : "client";
  for (const socket of sockets) {
    const s = socket.hopSamples!;
    if (s.total.length < 1000) continue; // setup and cleanup connections
    const line = { pid: process.pid, role, n: s.total.length, in: summary(s.in), own: summary(s.own), out: summary(s.out), total: summary(s.total) };
    appendFileSync(out, `${JSON.stringify(line)}\n`);
  }
});
