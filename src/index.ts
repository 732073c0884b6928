export { Code, SERVER_CODES, RETRYABLE_CODES, isFrameworkCode } from "./codes.js";
export { RpcError, ValidationError, isRpcError } from "./errors.js";
export type { RpcErrorOptions, ValidationIssue, ValidationSide } from "./errors.js";
export { defineService, method } from "./descriptor.js";
export type {
  JsonSchema,
  ErrorShape,
  ErrorSpec,
  MethodSpec,
  MethodDescriptor,
  ServiceSpec,
  ServiceDescriptor,
  RequestOf,
  ResponseOf,
  ErrorOf,
  DeclaredError,
} from "./descriptor.js";
export type { CallOptions, RpcTransport } from "./transport.js";
export type { HandlerContext, MethodHandler, ServiceHandlers, ErrorDataArgs } from "./handler.js";
export { RpcServer } from "./server.js";
export type { RegisterOptions, Registration } from "./server.js";
