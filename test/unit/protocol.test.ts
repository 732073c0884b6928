import { describe, expect, it } from "vitest";
import { RpcError } from "../../src/core/errors.js";
import { decodeBody, encodeBody, isReplyCode, readDeadline, serverErrorBody, toErrorBody } from "../../src/core/protocol.js";

const json = "application/json";

describe("decodeBody", () => {
  it("decodes UTF-8 JSON", () => {
    expect(decodeBody(Buffer.from('{"a":"é"}'), json, 1024)).toEqual({ ok: true, value: { a: "é" } });
  });
  it("accepts media-type parameters and a UTF-8 charset as other clients send them, and refuses another charset by name", () => {
    for (const type of ["application/json; charset=utf-8", "application/json;charset=UTF-8", 'Application/JSON; charset="utf-8"', "application/json; v=1"]) {
      expect(decodeBody(Buffer.from('{"a":1}'), type, 1024), type).toEqual({ ok: true, value: { a: 1 } });
    }
    expect(decodeBody(Buffer.from("{}"), "application/json; charset=iso-8859-1", 1024)).toEqual({
      ok: false,
      reason: 'content_type "application/json; charset=iso-8859-1": charset "iso-8859-1" is not supported; send UTF-8',
    });
    expect(decodeBody(Buffer.from("{}"), "application/jsonx", 1024)).toMatchObject({ ok: false, reason: expect.stringContaining('must be "application/json"') });
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
  it("accepts server codes and application codes from the wire, not caller-side codes", () => {
    expect(isReplyCode("internal")).toBe(true);
    expect(isReplyCode("overflow")).toBe(true);
    expect(isReplyCode("added_by_a_newer_contract")).toBe(true);
    expect(isReplyCode("timeout")).toBe(false);
    expect(isReplyCode("no_server")).toBe(false);
    expect(isReplyCode("canceled")).toBe(false);
  });
  it("keeps internal causes off the wire unless exposed", () => {
    const err = new RpcError("internal", "internal server error", { cause: new Error("secret") });
    expect(JSON.stringify(serverErrorBody(err, false))).not.toContain("secret");
    expect(JSON.stringify(serverErrorBody(err, true))).toContain("secret");
  });
});

describe("deadline header", () => {
  it("reads a number or a decimal string, null for anything else, undefined when absent", () => {
    expect(readDeadline({ "x-warren-deadline": 123 })).toBe(123);
    expect(readDeadline({ "x-warren-deadline": "456" })).toBe(456);
    expect(readDeadline({ "x-warren-deadline": "soon" })).toBeNull();
    expect(readDeadline({ "x-warren-deadline": { at: 1 } })).toBeNull();
    expect(readDeadline(undefined)).toBeUndefined();
  });
});
