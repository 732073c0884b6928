/**
 * The contracts as the `warren` command sees them: found through the flags or
 * warren.config.json (codegen/config.ts), loaded and checked by the generator's
 * own stages (load -> model), and turned into runtime descriptors with
 * `defineService`, so calls, servers and publishers validate exactly as
 * generated code does.
 */
import path from "node:path";
import { defineService, type EventSpec, type JsonSchema, type MethodSpec, type ServiceDescriptor } from "../../src/index.js";
import { resolveSettings } from "../config.js";
import { CodegenError, CodegenErrors } from "../errors.js";
import { loadSchemas, toPosix } from "../load.js";
import { buildModel, type EventModel, type MethodModel, type Model, type ServiceModel } from "../model.js";
import { didYouMean } from "../suggest.js";
import { CliError, Exit } from "./exit.js";

/** Flags that say where the contracts are. */
export interface ContractFlags {
  readonly schemas?: string | undefined;
  readonly config?: string | undefined;
}

/** Every contract of the schemas directory, checked. */
export interface Contracts {
  readonly model: Model;
  /** The schemas directory, as shown to the user. */
  readonly dir: string;
}

/**
 * Loads and checks the contracts; a missing directory or a refused contract is
 * a {@link CliError} with status 3 and the generator's first message (and how
 * many more there are).
 */
export async function loadContracts(flags: ContractFlags, cwd: string): Promise<Contracts> {
  try {
    const settings = await resolveSettings({ schemas: flags.schemas, config: flags.config }, cwd);
    const loaded = await loadSchemas(settings.schemas, cwd);
    return { model: buildModel(loaded), dir: toPosix(path.relative(cwd, settings.schemas)) || "." };
  } catch (error) {
    if (error instanceof CodegenErrors) {
      const [first] = error.errors;
      const more = error.errors.length - 1;
      throw new CliError(Exit.contracts, `${first === undefined ? "invalid contracts" : format(first)}${more > 0 ? ` (and ${more} more problem${more === 1 ? "" : "s"}; run: warren codegen --check)` : ""}`);
    }
    if (error instanceof CodegenError) throw new CliError(Exit.contracts, format(error));
    throw error;
  }
}

/** The generator's `file:line:col #pointer: reason`, or `dir: reason` for a whole-directory problem. */
function format(error: CodegenError): string {
  return error.position === undefined && error.pointer === "" ? `${error.file}: ${error.message}` : error.format();
}

/** The service named `name`, or a usage error with a did-you-mean. */
export function findService(contracts: Contracts, name: string): ServiceModel {
  const services = contracts.model.services;
  const found = services.find((s) => s.name === name) ?? services.find((s) => s.name.toLowerCase() === name.toLowerCase());
  if (found !== undefined) return found;
  const known = services.map((s) => s.name);
  throw new CliError(Exit.usage, `no service "${name}" in ${contracts.dir}/${didYouMean(name, known) || `; services: ${known.join(", ") || "none"}`}`);
}

/** Splits `Service.member` at its first dot. */
export function splitTarget(target: string): { service: string; member: string | undefined } {
  const dot = target.indexOf(".");
  return dot < 0 ? { service: target, member: undefined } : { service: target.slice(0, dot), member: target.slice(dot + 1) };
}

/** The method of `service` by wire name (or TypeScript name), or a usage error with a did-you-mean. */
export function findMethod(service: ServiceModel, name: string): MethodModel {
  const found = service.methods.find((m) => m.wireName === name || m.tsName === name);
  if (found !== undefined) return found;
  const known = service.methods.map((m) => m.wireName);
  throw new CliError(Exit.usage, `${service.name} has no method "${name}"${didYouMean(name, [...known, ...service.methods.map((m) => m.tsName)]) || `; methods: ${known.join(", ") || "none"}`}`);
}

/** The event of `service` by wire name (or TypeScript name), or a usage error with a did-you-mean. */
export function findEvent(service: ServiceModel, name: string): EventModel {
  const found = service.events.find((e) => e.wireName === name || e.tsName === name);
  if (found !== undefined) return found;
  const known = service.events.map((e) => e.wireName);
  throw new CliError(Exit.usage, `${service.name} has no event "${name}"${didYouMean(name, known) || `; events: ${known.join(", ") || "none"}`}`);
}

/** The `defs` of a service's descriptor: its own `$defs` and every shared definition it reaches (as in generated descriptor.ts). */
export function defsOf(service: ServiceModel, model: Model): Record<string, JsonSchema> {
  const shared = new Map(model.shared.map((d) => [d.name, d.schema]));
  return Object.fromEntries([
    ...service.ownDefs.map((d) => [d.name, d.schema] as const),
    ...service.sharedTypes.flatMap((n) => {
      const schema = shared.get(n);
      return schema === undefined ? [] : [[n, schema] as const];
    }),
  ]);
}

/** The runtime descriptor of a service: what generated `descriptor.ts` builds, made at run time from the model. */
export function descriptorOf(service: ServiceModel, model: Model): ServiceDescriptor {
  const methods: Record<string, MethodSpec> = {};
  for (const m of service.methods) {
    methods[m.tsName] = {
      name: m.wireName,
      description: m.description,
      request: m.request,
      response: m.response,
      ...(m.errors.length > 0 ? { errors: Object.fromEntries(m.errors.map((e) => [e.code, e.data === undefined ? { description: e.description } : { description: e.description, data: e.data }])) } : {}),
      ...(m.timeoutMs === undefined ? {} : { timeoutMs: m.timeoutMs }),
      ...(m.idempotent === undefined ? {} : { idempotent: m.idempotent }),
    };
  }
  const events: Record<string, EventSpec> = {};
  for (const e of service.events) events[e.tsName] = { name: e.wireName, description: e.description, routingKey: e.routingKey, payload: e.payload };
  return defineService({
    name: service.name,
    version: service.version,
    queue: service.queue,
    description: service.description,
    unknownProperties: service.unknownProperties,
    defs: defsOf(service, model),
    methods,
    exchange: { name: service.exchange.name, type: service.exchange.type },
    events,
  }) as unknown as ServiceDescriptor;
}
