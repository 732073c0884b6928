/** src/core/errors.ts: what an RpcError and a ValidationError say, and their wire form. */
import { describe, expect, it } from "vitest";
import { RpcError, ValidationError, isRpcError } from "../../src/core/errors.js";

describe("errors", () => {
  it("validation errors list their paths, and carry them as data on the wire", () => {
    const err = new ValidationError("invalid_request", "client", [{ path: "/b", message: "is required" }], { service: "Calculator", method: "add" });
    expect(err.message).toBe("Calculator.add: invalid request: /b is required");
    expect(err).toMatchObject({ side: "client", service: "Calculator", method: "add", issues: [{ path: "/b", message: "is required" }] });
    expect(err.toJSON()).toEqual({ code: "invalid_request", message: err.message, data: { issues: [{ path: "/b", message: "is required" }] } });
  });

  it("an RpcError's wire form has no data when it has none, and never its cause", () => {
    const err = new RpcError("internal", "internal server error", { cause: new Error("secret") });
    expect(err.toJSON()).toStrictEqual({ code: "internal", message: "internal server error" });
    expect(isRpcError(err)).toBe(true);
    expect(isRpcError(new Error("x"))).toBe(false);
  });
});
