/** Assertion helpers shared by the integration tests. */
import { expect } from "vitest";
import { RpcError } from "../../src/index.js";

/** Resolves with the `RpcError` `p` rejects with; fails the test if it resolves or rejects with anything else. */
export async function rejection(p: Promise<unknown>): Promise<RpcError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(RpcError);
    return err as RpcError;
  }
  throw new Error("expected the call to fail");
}
