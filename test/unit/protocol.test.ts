import { describe, expect, it } from "vitest";
import { RpcError, ValidationError } from "../../src/core/errors.js";
import { callTimeout, redactUrl, resolveClientOptions, resolveServerOptions } from "../../src/core/options.js";
import { decodeBody, encodeBody, isKnownReplyCode, readDeadline, serverErrorBody, toErrorBody } from "../../src/core/protocol.js";

const json = "application/json";

describe("decodeBody", () => {
  it("decodes UTF-8 JSON", () => {
    expect(decodeBody(Buffer.from('{"a":"é"}'), json, 1024)).toEqual({ ok: true, value: { a: "é" } });
  });
  it("refuses the wrong or a missing content type before anything else", () => {
    expect(decodeBody(Buffer.from("{}"), "text/plain", 1024)).toMatchObject({ ok: false, reason: expect.stringContaining('got "text/plain"') });
    expect(decodeBody(Buffer.from("{}"), undefined, 1024)).toMatchObject({ ok: false, reason: expect.stringContaining("got none") });
  });
  it("enforces the size limit before parsing", () => {
    expect(decodeBody(Buffer.alloc(2048, 0x20), json, 1024)).toMatchObject({ ok: false, reason: "body of 2048 bytes exceeds the limit of 1024" });
  });
  it("refuses invalid UTF-8 and non-JSON", () => {
    expect(decodeBody(Buffer.from([0x7b, 0xff, 0x7d]), json, 1024)).toMatchObject({ ok: false, reason: "body is not valid UTF-8" });
    expect(decodeBody(Buffer.from("{nope"), json, 1024)).toMatchObject({ ok: false, reason: expect.stringContaining("not JSON") });
  });
  it("drops __proto__ keys so a decoded object cannot carry a prototype payload", () => {
    const decoded = decodeBody(Buffer.from('{"a":1,"__proto__":{"polluted":true},"n":{"__proto__":{"x":1}}}'), json, 1024);
    expect(decoded.ok).toBe(true);
    const value = (decoded as { value: Record<string, unknown> }).value;
    expect(Object.keys(value)).toEqual(["a", "n"]);
    expect(Object.assign({}, value)).not.toHaveProperty("polluted");
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
  it("encodes undefined as null", () => {
    expect(encodeBody(undefined).toString()).toBe("null");
  });
});

describe("error bodies", () => {
  it("reads well-formed error bodies and refuses others", () => {
    expect(toErrorBody({ code: "internal", message: "x" })).toEqual({ code: "internal", message: "x" });
    expect(toErrorBody({ code: "Not Snake", message: "x" })).toBeUndefined();
    expect(toErrorBody("internal")).toBeUndefined();
  });
  it("accepts only server codes and declared codes from the wire", () => {
    expect(isKnownReplyCode("internal", {})).toBe(true);
    expect(isKnownReplyCode("overflow", { overflow: {} })).toBe(true);
    expect(isKnownReplyCode("timeout", {})).toBe(false);
    expect(isKnownReplyCode("toString", {})).toBe(false);
  });
  it("keeps internal causes off the wire unless exposed", () => {
    const err = new RpcError("internal", "internal server error", { cause: new Error("secret") });
    expect(JSON.stringify(serverErrorBody(err, false))).not.toContain("secret");
    expect(JSON.stringify(serverErrorBody(err, true))).toContain("secret");
  });
  it("validation errors list their paths", () => {
    const err = new ValidationError("invalid_request", "client", [{ path: "/b", message: "is required" }], { service: "Calculator", method: "add" });
    expect(err.message).toBe("Calculator.add: invalid request: /b is required");
    expect(err.toJSON()).toEqual({ code: "invalid_request", message: err.message, data: { issues: [{ path: "/b", message: "is required" }] } });
  });
});

describe("options", () => {
  it("redacts passwords in URLs", () => {
    expect(redactUrl("amqp://user:hunter2@host:5672/vh")).toBe("amqp://user:***@host:5672/vh");
    expect(redactUrl("amqps://user:p%40ss@host")).not.toContain("p%40ss");
    expect(redactUrl("not a url user:pw@x")).not.toContain(":pw@");
  });
  it("takes the per-call timeout, else the method's, else the client's", () => {
    expect(callTimeout(10, 20, 30)).toBe(10);
    expect(callTimeout(undefined, 20, 30)).toBe(20);
    expect(callTimeout(undefined, undefined, 30)).toBe(30);
    expect(() => callTimeout(0, 20, 30)).toThrow("timeoutMs must be a positive number");
  });
  it("applies defaults once and refuses nonsense", () => {
    expect(resolveServerOptions({}, console)).toMatchObject({ prefetch: 32, maxMessageBytes: 1048576, exposeInternalErrors: false });
    expect(resolveClientOptions({}, console)).toMatchObject({ timeoutMs: 30000, replyQueue: "direct" });
    expect(() => resolveServerOptions({ prefetch: -1 }, console)).toThrow("prefetch must be a positive number");
  });
  it("reads the deadline header", () => {
    expect(readDeadline({ "x-warren-deadline": 123 })).toBe(123);
    expect(readDeadline({ "x-warren-deadline": "456" })).toBe(456);
    expect(readDeadline({ "x-warren-deadline": "soon" })).toBeNull();
    expect(readDeadline({ "x-warren-deadline": { at: 1 } })).toBeNull();
    expect(readDeadline(undefined)).toBeUndefined();
  });
});
