/**
 * A loopback TCP proxy in front of the broker that understands AMQP 0-9-1
 * frames in the broker-to-client direction, for faults that depend on what
 * arrives in one socket read.
 *
 * Frames are `type(1) channel(2) size(4) payload(size) 0xCE`; a method frame's
 * payload starts with `class-id(2) method-id(2)`. When armed
 * ({@link FrameProxy.armConsumeOkClose}, or {@link FrameProxy.armCloseWith} for
 * another method), the proxy holds the next `basic.consume-ok` (class 60,
 * method 21) and writes it together with a synthesized `connection.close`
 * (320 CONNECTION_FORCED) in ONE socket write, so the client's library sees
 * both in the same read. From then on nothing
 * more goes either way on that connection (the client's close-ok is not passed
 * on: the broker never sent a close), and the broker-side socket is closed
 * shortly after. The arming is used once; every other connection, before and
 * after, is forwarded unchanged.
 */
import net from "node:net";

/** AMQP frame types and the methods this proxy looks at. */
const FRAME_METHOD = 1;
const FRAME_END = 0xce;
/** `basic.consume-ok`. */
export const CONSUME_OK = { classId: 60, methodId: 21 } as const;
/** `confirm.select-ok`: what `createConfirmChannel()` waits for last. */
export const CONFIRM_SELECT_OK = { classId: 85, methodId: 11 } as const;
const CONNECTION = 10;
const CONNECTION_CLOSE = 50;
const CONNECTION_FORCED = 320;

/** A method frame to glue a close to. */
export interface MethodId {
  readonly classId: number;
  readonly methodId: number;
}

/** What the proxy did when it glued a close to a method frame. */
export interface Glued {
  /** Channel number the held frame was on. */
  readonly channel: number;
  /** For a consume-ok, its consumer tag; else "". */
  readonly consumerTag: string;
  /** Bytes in the one write that carried consume-ok and connection.close. */
  readonly bytes: number;
  /** Frames (consume-ok, close, and any complete frames before them in the same read) in that write. */
  readonly frames: number;
}

export interface FrameProxy {
  /** The broker URL to give `connect()`: same credentials and vhost, the proxy's port. */
  readonly url: string;
  readonly port: number;
  /** Client connections accepted so far. */
  readonly accepted: number;
  /** Connections currently open through the proxy. */
  readonly open: number;
  /** How many times a consume-ok was glued to a close. */
  readonly glueCount: number;
  /**
   * Arms the proxy: the next `basic.consume-ok` on any connection is written
   * with a `connection.close` in one write. Resolves with what was glued.
   */
  armConsumeOkClose(replyText?: string): Promise<Glued>;
  /** Like {@link armConsumeOkClose}, for the next method frame `method` (e.g. {@link CONFIRM_SELECT_OK}). */
  armCloseWith(method: MethodId, replyText?: string): Promise<Glued>;
  /** Drops every proxied connection now (both sockets), like a network fault. Returns how many. */
  dropAll(): number;
  /** Stops listening and drops every connection. */
  close(): Promise<void>;
}

interface Pair {
  readonly client: net.Socket;
  readonly broker: net.Socket;
  /** After a glue: nothing more is forwarded in either direction. */
  cut: boolean;
}

/** The broker the proxy forwards to, from `AMQP_URL` (default 127.0.0.1:5672). */
function upstream(): URL {
  return new URL(process.env.AMQP_URL ?? "amqp://guest:guest@127.0.0.1:5672");
}

/** Encodes an AMQP `connection.close` frame on channel 0. */
export function connectionCloseFrame(replyCode: number, replyText: string, classId = 0, methodId = 0): Buffer {
  const text = Buffer.from(replyText, "utf8");
  if (text.length > 255) throw new RangeError("reply-text is a shortstr (at most 255 bytes)");
  const payload = Buffer.alloc(4 + 2 + 1 + text.length + 2 + 2);
  let o = 0;
  o = payload.writeUInt16BE(CONNECTION, o);
  o = payload.writeUInt16BE(CONNECTION_CLOSE, o);
  o = payload.writeUInt16BE(replyCode, o);
  o = payload.writeUInt8(text.length, o);
  o += text.copy(payload, o);
  o = payload.writeUInt16BE(classId, o);
  payload.writeUInt16BE(methodId, o);
  const frame = Buffer.alloc(7 + payload.length + 1);
  frame.writeUInt8(FRAME_METHOD, 0);
  frame.writeUInt16BE(0, 1);
  frame.writeUInt32BE(payload.length, 3);
  payload.copy(frame, 7);
  frame.writeUInt8(FRAME_END, 7 + payload.length);
  return frame;
}

/** Starts a proxy on an ephemeral loopback port. */
export async function startFrameProxy(): Promise<FrameProxy> {
  const target = upstream();
  const targetHost = target.hostname || "127.0.0.1";
  const targetPort = Number(target.port || 5672);
  const pairs = new Set<Pair>();
  let accepted = 0;
  let glueCount = 0;
  let armed: { method: MethodId; replyText: string; resolve: (g: Glued) => void } | undefined;

  const server = net.createServer((client) => {
    accepted++;
    client.setNoDelay(true);
    const broker = net.connect({ host: targetHost, port: targetPort });
    broker.setNoDelay(true);
    const pair: Pair = { client, broker, cut: false };
    pairs.add(pair);
    const teardown = () => {
      pairs.delete(pair);
      client.destroy();
      broker.destroy();
    };
    client.on("error", teardown);
    broker.on("error", teardown);
    client.on("close", teardown);
    broker.on("close", teardown);

    // Client to broker: raw bytes (the protocol header, then frames), until a glue cuts the connection.
    client.on("data", (chunk: Buffer) => {
      if (!pair.cut) broker.write(chunk);
    });

    // Broker to client: whole frames, so that a consume-ok can be recognised and held.
    let pending: Buffer = Buffer.alloc(0);
    let passthrough = false; // not frames (e.g. a protocol-header refusal): forward as is
    broker.on("data", (chunk: Buffer) => {
      if (pair.cut) return;
      if (passthrough) {
        client.write(chunk);
        return;
      }
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      let offset = 0;
      const out: Buffer[] = [];
      while (pending.length - offset >= 7) {
        const size = pending.readUInt32BE(offset + 3);
        const end = offset + 7 + size + 1;
        if (pending.length < end) break;
        if (pending[end - 1] !== FRAME_END) {
          // Not AMQP frames after all: stop parsing and forward everything from here on unchanged.
          passthrough = true;
          out.push(pending.subarray(offset));
          offset = pending.length;
          break;
        }
        const frame = pending.subarray(offset, end);
        offset = end;
        const type = frame[0];
        if (armed !== undefined && type === FRAME_METHOD && size >= 4 && frame.readUInt16BE(7) === armed.method.classId && frame.readUInt16BE(9) === armed.method.methodId) {
          const { method, replyText, resolve } = armed;
          armed = undefined;
          glueCount++;
          const isConsumeOk = method.classId === CONSUME_OK.classId && method.methodId === CONSUME_OK.methodId;
          const tagLength = isConsumeOk && size >= 5 ? frame.readUInt8(11) : 0;
          const consumerTag = frame.subarray(12, 12 + tagLength).toString("utf8");
          const write = Buffer.concat([...out, frame, connectionCloseFrame(CONNECTION_FORCED, replyText)]);
          pair.cut = true; // nothing after this: not the broker's later frames, not the client's close-ok
          client.write(write);
          // The client answers close-ok and ends its side; the broker only ever learns that the socket went away.
          setTimeout(() => broker.destroy(), 50);
          setTimeout(() => client.destroy(), 1000);
          resolve({ channel: frame.readUInt16BE(1), consumerTag, bytes: write.length, frames: out.length + 2 });
          return;
        }
        out.push(frame);
      }
      pending = offset === pending.length ? Buffer.alloc(0) : Buffer.from(pending.subarray(offset));
      if (out.length === 1) client.write(out[0]!);
      else if (out.length > 1) client.write(Buffer.concat(out));
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;
  const url = new URL(target.toString());
  url.hostname = "127.0.0.1";
  url.port = String(port);

  const dropAll = () => {
    const n = pairs.size;
    for (const pair of [...pairs]) {
      pairs.delete(pair);
      pair.cut = true;
      pair.client.destroy();
      pair.broker.destroy();
    }
    return n;
  };

  const armCloseWith = (method: MethodId, replyText = `CONNECTION_FORCED - closed by the frame proxy together with method ${method.classId}/${method.methodId}`) => {
    if (armed !== undefined) throw new Error("frame proxy: already armed");
    return new Promise<Glued>((resolve) => (armed = { method, replyText, resolve }));
  };

  return {
    url: url.toString().replace(/\/$/, ""),
    port,
    get accepted() {
      return accepted;
    },
    get open() {
      return pairs.size;
    },
    get glueCount() {
      return glueCount;
    },
    armConsumeOkClose: (replyText = "CONNECTION_FORCED - closed by the frame proxy together with consume-ok") => armCloseWith(CONSUME_OK, replyText),
    armCloseWith,
    dropAll,
    close: () =>
      new Promise<void>((resolve) => {
        armed = undefined;
        dropAll();
        server.close(() => resolve());
      }),
  };
}
