import type { ServiceDescriptor } from "./descriptor.js";
import type { ServiceHandlers } from "./handler.js";

/** Per-service options for {@link RpcServer.register}. */
export interface RegisterOptions {
  /** Queue to consume from. @default the descriptor's `queue` (`rpc.<Service>`) */
  queue?: string;
}

/** A service being served; `close()` stops it gracefully. */
export interface Registration {
  readonly service: string;
  readonly queue: string;
  close(): Promise<void>;
}

/** Serves registered services from their queues. (Runtime being written.) */
export class RpcServer {
  /** Starts serving `service` with `handlers`; resolves once the queue consumer is active. */
  async register<S extends ServiceDescriptor>(
    service: S,
    handlers: ServiceHandlers<S>,
    options: RegisterOptions = {},
  ): Promise<Registration> {
    void handlers;
    throw new Error(`not yet: ${service.name} ${options.queue ?? ""}`);
  }
}
