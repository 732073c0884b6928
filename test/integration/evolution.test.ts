/**
 * Contracts that evolve (docs/EVOLUTION.md), over the real broker: for each
 * change the rules call safe, code generated from the old contract and code
 * generated from the new one talk to each other in both directions — an old
 * caller with a new server and a new caller with an old server, an old
 * subscriber with a new publisher and the other way round. Each case
 * generates both versions with the real generator into test/codegen/.tmp and
 * imports what it wrote.
 */
import { mkdir, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { generate } from "../../codegen/generate.js";
import { applyPlan, diffPlan } from "../../codegen/write.js";
import { RpcError, isDeclaredError, type Connection } from "../../src/index.js";
import { deleteAfter, deleteExchangeAfter, openConnection, until, uniqueName } from "../helpers/broker.js";

const ROOT = path.resolve(import.meta.dirname, "../..");
const TMP = path.join(ROOT, "test/codegen/.tmp/evolution");
afterAll(() => rm(TMP, { recursive: true, force: true }));

type Doc = Record<string, any>;

/** Version 1.0.0 of the contract every case starts from. */
function base(): Doc {
  return {
    service: "Library",
    version: "1.0.0",
    description: "Lends books.",
    methods: {
      lend: {
        description: "Lends a book to a member.",
        request: {
          type: "object",
          required: ["isbn", "member"],
          additionalProperties: false,
          properties: { isbn: { type: "string" }, member: { type: "string" } },
        },
        response: { type: "object", required: ["due"], additionalProperties: false, properties: { due: { type: "string" } } },
        errors: { not_available: { description: "Somebody else has it." } },
      },
    },
    events: {
      lent: {
        description: "A book was lent.",
        payload: { type: "object", required: ["isbn", "member"], additionalProperties: false, properties: { isbn: { type: "string" }, member: { type: "string" } } },
      },
    },
  };
}

/** What a generated module of the Library contract exports (the parts these tests use). */
interface LibraryModule {
  // Each version has its own methods and events: typed loosely here, checked by the calls' outcomes.
  LibraryClient: new (transport: unknown) => any;
  LibraryPublisher: new (transport: unknown) => any;
  LibrarySubscriber: new (transport: unknown) => any;
  serveLibrary: (server: unknown, handlers: Record<string, (request: any, ctx: any) => unknown>, options?: unknown) => Promise<unknown>;
  Library: { version: string; methods: Record<string, any> };
}

/** Generates `doc` with the real generator and imports the result. */
async function build(name: string, doc: Doc): Promise<LibraryModule> {
  const dir = path.join(TMP, name);
  await rm(dir, { recursive: true, force: true });
  await mkdir(path.join(dir, "schemas"), { recursive: true });
  await writeFile(path.join(dir, "schemas", "library.service.json"), JSON.stringify(doc, null, 2));
  const out = path.join(dir, "generated");
  const runtime = path.relative(path.join(out, "library"), path.join(ROOT, "src/index.js")).split(path.sep).join("/");
  const { plan } = await generate({ schemasDir: "schemas", runtime, cwd: dir });
  await applyPlan(out, plan, await diffPlan(out, plan));
  return (await import(path.join(out, "index.ts"))) as LibraryModule;
}

/** One safe change: the old contract (the base, `prepare`d) and the new one (the old, `change`d), side by side on one queue and one exchange. */
async function pair(name: string, change: (doc: Doc) => void, prepare: (doc: Doc) => void = () => {}) {
  const queue = uniqueName("library");
  const exchange = uniqueName("library.events");
  const oldDoc: Doc = { ...base(), exchange: { name: exchange } };
  prepare(oldDoc);
  const newDoc = structuredClone(oldDoc);
  newDoc.version = "1.1.0";
  change(newDoc);
  const [v1, v2] = await Promise.all([build(`${name}/v1`, oldDoc), build(`${name}/v2`, newDoc)]);
  const conn = await openConnection();
  deleteAfter(queue);
  deleteExchangeAfter(exchange);
  return { v1, v2, conn, queue, exchange };
}

/** Serves `module`'s Library on `queue`: `lend` answers a due date and records what it received. */
async function serve(conn: Connection, module: LibraryModule, queue: string, extra: Record<string, (request: any, ctx: any) => unknown> = {}) {
  const received: unknown[] = [];
  const handlers: Record<string, (request: any, ctx: any) => unknown> = {
    lend: (request: { isbn: string }, ctx: { error(code: string): Error }) => {
      received.push(request);
      if (request.isbn === "0") throw ctx.error("not_available");
      return { due: "2026-12-31" };
    },
    ...extra,
  };
  for (const key of Object.keys(module.Library.methods)) handlers[key] ??= () => ({});
  const server = conn.server();
  await module.serveLibrary(server, handlers, { queue });
  return { received, close: () => (server as { close(): Promise<void> }).close() };
}

async function clientOf(conn: Connection, module: LibraryModule, queue: string) {
  return new module.LibraryClient(await conn.client({ queues: { Library: queue }, timeoutMs: 5000 }));
}

describe("an old caller and a new server, a new caller and an old server", () => {
  it("add an optional request field: the new server serves old callers; an old server drops the field a new caller sends", async () => {
    const { v1, v2, conn, queue } = await pair("optional-request-field", (d) => {
      d.methods.lend.request.properties.note = { type: "string" };
    });
    const newServer = await serve(conn, v2, queue);
    expect(await (await clientOf(conn, v1, queue)).lend({ isbn: "1", member: "ada" })).toEqual({ due: "2026-12-31" });
    expect(newServer.received).toEqual([{ isbn: "1", member: "ada" }]);
    await newServer.close();

    const oldServer = await serve(conn, v1, queue);
    expect(await (await clientOf(conn, v2, queue)).lend({ isbn: "1", member: "ada", note: "gift" })).toEqual({ due: "2026-12-31" });
    expect(oldServer.received).toEqual([{ isbn: "1", member: "ada" }]);
  });

  it("add an optional response field: an old caller drops it; a new caller of an old server goes without it", async () => {
    const { v1, v2, conn, queue } = await pair("optional-response-field", (d) => {
      d.methods.lend.response.properties.renewals = { type: "integer" };
    });
    const newServer = await serve(conn, v2, queue, { lend: () => ({ due: "2027-01-15", renewals: 2 }) });
    expect(await (await clientOf(conn, v1, queue)).lend({ isbn: "1", member: "ada" })).toEqual({ due: "2027-01-15" });
    await newServer.close();

    await serve(conn, v1, queue);
    expect(await (await clientOf(conn, v2, queue)).lend({ isbn: "1", member: "ada" })).toEqual({ due: "2026-12-31" });
  });

  it("add a method: old callers are served as before; a new caller of an old server gets unknown_method for it alone", async () => {
    const { v1, v2, conn, queue } = await pair("new-method", (d) => {
      d.methods.renew = { description: "Renews a loan.", request: d.methods.lend.request, response: d.methods.lend.response };
    });
    const newServer = await serve(conn, v2, queue, { renew: () => ({ due: "2027-02-01" }) });
    expect(await (await clientOf(conn, v1, queue)).lend({ isbn: "1", member: "ada" })).toEqual({ due: "2026-12-31" });
    await newServer.close();

    await serve(conn, v1, queue);
    const client = await clientOf(conn, v2, queue);
    expect(await client.lend({ isbn: "1", member: "ada" })).toEqual({ due: "2026-12-31" });
    await expect(client.renew({ isbn: "1", member: "ada" })).rejects.toMatchObject({ code: "unknown_method" });
  });

  it("add an error code: an old caller gets the new code as an untyped RpcError; declared codes stay typed both ways", async () => {
    const { v1, v2, conn, queue } = await pair("new-error-code", (d) => {
      d.methods.lend.errors.banned = { description: "The member may not borrow." };
    });
    await serve(conn, v2, queue, {
      lend: (request: { isbn: string; member: string }, ctx: { error(code: string): Error }) => {
        if (request.member === "mallory") throw ctx.error("banned");
        if (request.isbn === "0") throw ctx.error("not_available");
        return { due: "2026-12-31" };
      },
    });
    const oldClient = await clientOf(conn, v1, queue);
    const banned = await oldClient.lend({ isbn: "1", member: "mallory" }).catch((e: unknown) => e);
    expect(banned).toBeInstanceOf(RpcError);
    expect(banned).toMatchObject({ code: "banned" });
    expect(isDeclaredError(v1.Library.methods.lend, banned)).toBe(false);
    const unavailable = await oldClient.lend({ isbn: "0", member: "ada" }).catch((e: unknown) => e);
    expect(isDeclaredError(v1.Library.methods.lend, unavailable)).toBe(true);
  });

  it("add an event and an optional payload field: old subscribers get what they know, new subscribers of an old publisher go without the field", async () => {
    const { v1, v2, conn } = await pair("new-event-and-payload-field", (d) => {
      d.events.lent.payload.properties.branch = { type: "string" };
      d.events.returned = { description: "A book came back.", payload: d.events.lent.payload };
    });
    const bus = conn.events();
    const group = uniqueName("g");
    const oldSeen: unknown[] = [];
    const newSeen: unknown[] = [];
    const oldSub = await new v1.LibrarySubscriber(bus).onLent((p: unknown) => void oldSeen.push(p), { group: `${group}-old` });
    const newSub = await new v2.LibrarySubscriber(bus).onLent((p: unknown) => void newSeen.push(p), { group: `${group}-new` });
    // Registered at once, so that a failing assertion below still leaves nothing on the broker.
    for (const sub of [oldSub, newSub] as unknown as { queue: string; deadLetterQueue: string }[]) {
      deleteAfter(sub.queue);
      deleteAfter(sub.deadLetterQueue);
    }
    await new v2.LibraryPublisher(bus).publishReturned({ isbn: "9", member: "ada" });
    await new v2.LibraryPublisher(bus).publishLent({ isbn: "1", member: "ada", branch: "north" });
    await new v1.LibraryPublisher(bus).publishLent({ isbn: "2", member: "bob" });
    await until(() => oldSeen.length === 2 && newSeen.length === 2, "both subscribers to get both lent events");
    expect(oldSeen).toEqual([{ isbn: "1", member: "ada" }, { isbn: "2", member: "bob" }]);
    expect(newSeen).toEqual([{ isbn: "1", member: "ada", branch: "north" }, { isbn: "2", member: "bob" }]);
  });

  it("widen a request enum and relax a request bound: old callers are served; a new caller using the new value gets a clear invalid_request from an old server", async () => {
    const { v1, v2, conn, queue } = await pair(
      "request-loosened",
      (d) => {
        d.methods.lend.request.properties.format.enum.push("ebook");
        d.methods.lend.request.properties.isbn.maxLength = 13;
      },
      (d) => {
        d.methods.lend.request.properties.format = { enum: ["paper"] };
        d.methods.lend.request.properties.isbn.maxLength = 10;
      },
    );
    const newServer = await serve(conn, v2, queue);
    expect(await (await clientOf(conn, v1, queue)).lend({ isbn: "0262510871", member: "ada", format: "paper" })).toEqual({ due: "2026-12-31" });
    expect(newServer.received).toEqual([{ isbn: "0262510871", member: "ada", format: "paper" }]);
    await newServer.close();
    await serve(conn, v1, queue);
    const err = await (await clientOf(conn, v2, queue)).lend({ isbn: "1", member: "ada", format: "ebook" }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "invalid_request", side: "server", issues: [expect.objectContaining({ path: "/format" })] });
  });

  it("tighten a response and add data to an error: old callers accept the narrower response and drop the data they do not know", async () => {
    const { v1, v2, conn, queue } = await pair("response-tightened", (d) => {
      d.methods.lend.response.properties.due.format = "date";
      d.methods.lend.errors.not_available.data = { type: "object", required: ["until"], properties: { until: { type: "string" } } };
    });
    await serve(conn, v2, queue, {
      lend: (request: { isbn: string }, ctx: { error(code: string, data: unknown): Error }) => {
        if (request.isbn === "0") throw ctx.error("not_available", { until: "2027-01-01" });
        return { due: "2026-12-31" };
      },
    });
    const oldClient = await clientOf(conn, v1, queue);
    expect(await oldClient.lend({ isbn: "1", member: "ada" })).toEqual({ due: "2026-12-31" });
    const unavailable = await oldClient.lend({ isbn: "0", member: "ada" }).catch((e: unknown) => e);
    expect(unavailable).toMatchObject({ code: "not_available" });
    expect((unavailable as RpcError).data).toBeUndefined();
    expect(isDeclaredError(v1.Library.methods.lend, unavailable)).toBe(true);
  });

  it("a new major version is refused both ways with incompatible_version naming both versions, not a validation error", async () => {
    const { v1, conn, queue } = await pair("major", () => {});
    const v2 = await build("major/v2-major", { ...base(), version: "2.0.0" });
    const newServer = await serve(conn, v2, queue);
    const err = await (await clientOf(conn, v1, queue)).lend({ isbn: "1", member: "ada" }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "incompatible_version", message: expect.stringMatching(/Library 1\.0\.0 is incompatible with this receiver's Library 2\.0\.0/) });
    await newServer.close();
    const oldServer = await serve(conn, v1, queue);
    const back = await (await clientOf(conn, v2, queue)).lend({ isbn: "1", member: "ada" }).catch((e: unknown) => e);
    expect(back).toMatchObject({ code: "incompatible_version", message: expect.stringMatching(/Library 2\.0\.0 is incompatible with this receiver's Library 1\.0\.0/) });
    expect(newServer.received).toEqual([]);
    expect(oldServer.received).toEqual([]);
  });
});
