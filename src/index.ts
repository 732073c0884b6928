/**
 * warren's runtime: what generated stubs and user code import. Everything
 * public is listed here by name.
 */
export { Code, SERVER_CODES, RETRYABLE_CODES, isFrameworkCode } from "./core/codes.js";
export { RpcError, ValidationError, isRpcError } from "./core/errors.js";
export type { RpcErrorOptions, ValidationIssue, ValidationSide } from "./core/errors.js";
export { defineService, method, event, defaultExchange, defaultQueue } from "./core/descriptor.js";
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
} from "./core/descriptor.js";
export { EventBus } from "./events/bus.js";
export type { Parent } from "./core/parent.js";
export type { EventHandlers, EventTransport, PublishOptions } from "./events/bus.js";
export { BindingConflict } from "./events/bindings.js";
export type { EventContext, EventHandler, Subscription } from "./events/subscription.js";
export type { CallOptions, RpcTransport } from "./rpc/transport.js";
export type { HandlerContext, MethodHandler, ServiceHandlers, ErrorDataArgs } from "./rpc/handler.js";
export type { RegisterOptions, Registration } from "./rpc/server.js";
export type { QueueType } from "./core/options.js";
export { connect, Connection } from "./connection.js";
export { RpcClient } from "./rpc/client.js";
export { DEFAULT_URL, redactUrl } from "./core/options.js";
export type { ConnectionOptions, SubscribeOptions } from "./core/options.js";
export type { EventBusOptions, OutgoingEvent, PublishInterceptor, PublishNext } from "./events/bus.js";
export type { ProcessInterceptor, ProcessNext } from "./events/subscription.js";
export type { WarrenTelemetry } from "./otel/telemetry.js";
export { defaultTelemetry, isTelemetryInterceptor } from "./otel/default.js";
export { consoleLogger, lineLogger, formatLogLine } from "./core/logging.js";
export type { Logger, LogFields } from "./core/logging.js";
export type { ClientOptions, ClientHealth } from "./rpc/client.js";
export type { ServerOptions, ServerHealth } from "./rpc/server.js";
export type { ClientInterceptor, ServerInterceptor, OutgoingCall, CallNext, HandleNext } from "./rpc/interceptors.js";
export { dedupe, fingerprint, canonicalJson } from "./rpc/idempotency.js";
export type { DedupeOptions } from "./rpc/idempotency.js";
export { memoryDedupeStore } from "./rpc/dedupe-store.js";
export type { DedupeStore, DedupeEntry, MemoryDedupeStoreOptions } from "./rpc/dedupe-store.js";
export { isDeclaredError } from "./core/declared.js";
export {
  CONTENT_TYPE,
  DIRECT_REPLY_TO,
  DEADLINE_HEADER,
  PROTOCOL_HEADER,
  CONTRACT_VERSION_HEADER,
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
} from "./core/protocol.js";
export { RpcServer } from "./rpc/server.js";
