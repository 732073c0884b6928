import type { DeclaredError, ErrorOf, MethodDescriptor } from "./descriptor.js";
import { isRpcError } from "./errors.js";

/**
 * True when `err` is one of the application errors `method` declares. Narrows
 * `err` to a union on `code`, so `switch (err.code)` types each `data`.
 *
 * @example
 * catch (err) {
 *   if (isDeclaredError(Calculator.methods.divide, err)) {
 *     switch (err.code) { case "division_by_zero": console.log(err.data.dividend); }
 *   }
 * }
 */
export function isDeclaredError<M extends MethodDescriptor<any, any, any>>(method: M, err: unknown): err is DeclaredError<ErrorOf<M>> {
  return isRpcError(err) && Object.hasOwn(method.errors, err.code);
}
