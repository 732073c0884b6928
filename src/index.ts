/**
 * warren's runtime: what generated stubs and user code import. Everything
 * public is listed here by name.
 */
export { Code, SERVER_CODES, RETRYABLE_CODES, isFrameworkCode } from "./codes.js";
export { RpcError, ValidationError, isRpcError } from "./errors.js";
export type { RpcErrorOptions, ValidationIssue, ValidationSide } from "./errors.js";
export { defineService, method, event, defaultExchange } from "./descriptor.js";
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
  ExchangeType,
  ExchangeSpec,
  EventSpec,
  EventDescriptor,
  PayloadOf,
} from "./descriptor.js";
export { EventBus } from "./events.js";
export type { EventTransport, PublishOptions } from "./events.js";
export type { EventContext, EventHandler, Subscription } from "./subscription.js";
export type { CallOptions, RpcTransport } from "./transport.js";
export type { HandlerContext, MethodHandler, ServiceHandlers, ErrorDataArgs } from "./handler.js";
export type { RegisterOptions, Registration } from "./server.js";
export type { QueueType } from "./queues.js";
export { connect, Connection } from "./connection.js";
export { RpcClient } from "./client.js";
export { DEFAULT_URL, redactUrl } from "./options.js";
export type { ConnectionOptions, ClientOptions, ServerOptions, EventBusOptions, SubscribeOptions, Logger } from "./options.js";
export { isDeclaredError } from "./declared.js";
export {
  CONTENT_TYPE,
  DIRECT_REPLY_TO,
  DEADLINE_HEADER,
  PROTOCOL_HEADER,
  PROTOCOL_VERSION,
  RESULT_TYPE,
  ERROR_TYPE,
  DEFAULT_MAX_MESSAGE_BYTES,
  ATTEMPT_HEADER,
  DEAD_REASON_HEADER,
  DEAD_ERROR_HEADER,
  DEAD_QUEUE_HEADER,
  ORIGIN_EXCHANGE_HEADER,
  ORIGIN_ROUTING_KEY_HEADER,
} from "./protocol.js";
export { RpcServer } from "./server.js";
