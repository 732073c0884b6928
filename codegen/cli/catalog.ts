/**
 * `warren list` (every service, method and event of the contracts, and each
 * request queue's state on the broker) and `warren describe Service[.member]`
 * (schemas, examples, errors, timeout, idempotency, queue, events).
 */
import type { JsonSchema } from "../../src/index.js";
import type { EventModel, MethodModel, ServiceModel } from "../model.js";
import { inspectQueue, openConnection, type BrokerFlags, type QueueState } from "./broker.js";
import { defsOf, findEvent, findMethod, findService, loadContracts, splitTarget, type ContractFlags, type Contracts } from "./contracts.js";
import { didYouMean } from "../suggest.js";
import { CliError, Exit } from "./exit.js";
import type { Io } from "./io.js";
import { examplesOf, reachedDefs } from "./schema-walk.js";

/** Flags of `warren list`. */
export interface ListFlags extends ContractFlags, BrokerFlags {
  readonly offline?: boolean | undefined;
  readonly json?: boolean | undefined;
}

/** The client's default budget when neither the call nor the contract sets one (src/core/options.ts). */
const DEFAULT_TIMEOUT_MS = 30_000;

/** Runs `warren list`; resolves to the exit status. */
export async function runList(flags: ListFlags, io: Io): Promise<number> {
  const contracts = await loadContracts(flags, io.cwd);
  const services = contracts.model.services;
  const states = new Map<string, QueueState | undefined>();
  if (!flags.offline && services.length > 0) {
    const conn = await openConnection(flags, io);
    try {
      for (const s of services) states.set(s.name, await inspectQueue(conn, s.queue));
    } finally {
      await conn.close().catch(() => {});
    }
  }
  const queueJson = (s: ServiceModel) => {
    if (flags.offline) return null;
    const state = states.get(s.name);
    return state === undefined ? { exists: false } : { exists: true, consumers: state.consumerCount, messages: state.messageCount };
  };
  if (flags.json) {
    const list = services.map((s) => ({
      service: s.name,
      version: s.version,
      description: s.description,
      file: s.file,
      queue: s.queue,
      broker: queueJson(s),
      methods: s.methods.map((m) => m.wireName),
      exchange: s.events.length > 0 ? { name: s.exchange.name, type: s.exchange.type } : null,
      events: s.events.map((e) => ({ name: e.wireName, routingKey: e.routingKey })),
    }));
    io.out(JSON.stringify(list, null, 2));
    return Exit.ok;
  }
  if (services.length === 0) {
    io.out(`no services in ${contracts.dir}/`);
    return Exit.ok;
  }
  const blocks = services.map((s) => {
    const lines = [`${s.name} ${s.version}  ${s.description}`];
    lines.push(`  queue    ${s.queue}  ${flags.offline ? "" : queueText(states.get(s.name))}`.trimEnd());
    lines.push(`  methods  ${s.methods.map((m) => m.wireName).join(", ") || "none"}`);
    if (s.events.length > 0) lines.push(`  events   ${s.events.map((e) => `${e.wireName} (${e.routingKey})`).join(", ")}  on ${s.exchange.type} exchange ${s.exchange.name}`);
    else lines.push("  events   none");
    return lines.join("\n");
  });
  io.out(blocks.join("\n\n"));
  return Exit.ok;
}

function queueText(state: QueueState | undefined): string {
  if (state === undefined) return "(no such queue on the broker: no server has started)";
  const consumers = state.consumerCount === 0 ? "no consumers: no server running" : `${state.consumerCount} consumer${state.consumerCount === 1 ? "" : "s"}`;
  return `(${consumers}, ${state.messageCount} waiting)`;
}

/** Flags of `warren describe`. */
export interface DescribeFlags extends ContractFlags {
  readonly json?: boolean | undefined;
}

/** Runs `warren describe`; resolves to the exit status. */
export async function runDescribe(target: string, flags: DescribeFlags, io: Io): Promise<number> {
  const contracts = await loadContracts(flags, io.cwd);
  const { service: serviceName, member } = splitTarget(target);
  const service = findService(contracts, serviceName);
  const defs = defsOf(service, contracts.model);
  if (member === undefined || member === "") {
    io.out(flags.json ? JSON.stringify(serviceJson(service, contracts), null, 2) : serviceText(service));
    return Exit.ok;
  }
  const isMethod = service.methods.some((m) => m.wireName === member || m.tsName === member);
  const isEvent = !isMethod && service.events.some((e) => e.wireName === member || e.tsName === member);
  if (!isMethod && !isEvent) {
    const known = [...service.methods.map((m) => m.wireName), ...service.events.map((e) => e.wireName)];
    throw new CliError(Exit.usage, `${service.name} has no method or event "${member}"${didYouMean(member, known) || `; it has: ${known.join(", ") || "nothing"}`}`);
  }
  if (isEvent) {
    const event = findEvent(service, member);
    io.out(flags.json ? JSON.stringify(eventJson(service, event, defs), null, 2) : eventText(service, event, defs));
  } else {
    const method = findMethod(service, member);
    io.out(flags.json ? JSON.stringify(methodJson(service, method, defs), null, 2) : methodText(service, method, defs));
  }
  return Exit.ok;
}

function serviceJson(s: ServiceModel, contracts: Contracts) {
  const defs = defsOf(s, contracts.model);
  return {
    service: s.name,
    version: s.version,
    description: s.description,
    file: s.file,
    queue: s.queue,
    unknownProperties: s.unknownProperties,
    methods: s.methods.map((m) => methodJson(s, m, defs)),
    exchange: { name: s.exchange.name, type: s.exchange.type },
    events: s.events.map((e) => eventJson(s, e, defs)),
  };
}

function methodJson(s: ServiceModel, m: MethodModel, defs: Record<string, JsonSchema>) {
  return {
    method: `${s.name}.${m.wireName}`,
    description: m.description,
    queue: s.queue,
    timeoutMs: m.timeoutMs ?? null,
    idempotent: m.idempotent ?? false,
    request: m.request,
    response: m.response,
    errors: m.errors.map((e) => ({ code: e.code, description: e.description, data: e.data ?? null })),
    examples: { request: examplesOf(m.request, defs), response: examplesOf(m.response, defs) },
    defs: pick(defs, reachedDefs([m.request, m.response, ...m.errors.map((e) => e.data)], defs)),
  };
}

function eventJson(s: ServiceModel, e: EventModel, defs: Record<string, JsonSchema>) {
  return {
    event: `${s.name}.${e.wireName}`,
    description: e.description,
    exchange: { name: s.exchange.name, type: s.exchange.type },
    routingKey: e.routingKey,
    payload: e.payload,
    examples: examplesOf(e.payload, defs),
    defs: pick(defs, reachedDefs([e.payload], defs)),
  };
}

function pick(defs: Record<string, JsonSchema>, names: readonly string[]): Record<string, JsonSchema> {
  return Object.fromEntries(names.map((n) => [n, defs[n]!]));
}

const indent = (text: string, by = "    ") => text.replace(/^/gm, by);
const pretty = (value: unknown) => indent(JSON.stringify(value, null, 2));

function serviceText(s: ServiceModel): string {
  const lines = [`${s.name} ${s.version}  ${s.description}`, `  file        ${s.file}`, `  queue       ${s.queue}`];
  if (s.unknownProperties === "reject") lines.push("  unknown properties are refused (unknownProperties: reject)");
  lines.push("  methods");
  for (const m of s.methods) lines.push(`    ${m.wireName.padEnd(20)} ${m.description}${m.idempotent ? " (idempotent)" : ""}`);
  if (s.methods.length === 0) lines.push("    none");
  if (s.events.length > 0) {
    lines.push(`  events on the ${s.exchange.type} exchange ${s.exchange.name}`);
    for (const e of s.events) lines.push(`    ${e.wireName.padEnd(20)} routing key ${e.routingKey}  ${e.description}`);
  } else lines.push("  events      none");
  lines.push(`\nwarren describe ${s.name}.<method or event> shows its schemas.`);
  return lines.join("\n");
}

function timeoutText(m: MethodModel): string {
  return m.timeoutMs === undefined ? `${DEFAULT_TIMEOUT_MS} ms (the client's default; the contract sets none)` : `${m.timeoutMs} ms`;
}

function methodText(s: ServiceModel, m: MethodModel, defs: Record<string, JsonSchema>): string {
  const lines = [
    `${s.name}.${m.wireName}  ${m.description}`,
    `  queue       ${s.queue} (request type "${m.wireName}")`,
    `  timeout     ${timeoutText(m)}`,
    `  idempotent  ${m.idempotent ? "yes: the client retries it after connection_lost; safe to retry after timeout" : "no: after timeout or connection_lost it may have run; do not retry blindly"}`,
    "",
    "  request",
    pretty(m.request),
    "  response",
    pretty(m.response),
  ];
  if (m.errors.length > 0) {
    lines.push("  errors");
    for (const e of m.errors) {
      lines.push(`    ${e.code}: ${e.description}`);
      if (e.data !== undefined) lines.push(`      data`, indent(JSON.stringify(e.data, null, 2), "      "));
    }
  } else lines.push("  errors      none declared (framework codes only)");
  for (const [what, schema] of [["request", m.request], ["response", m.response]] as const) {
    const examples = examplesOf(schema, defs);
    if (examples.length > 0) lines.push(`  ${what} examples`, ...examples.map((x) => `    ${JSON.stringify(x)}`));
  }
  const reached = reachedDefs([m.request, m.response, ...m.errors.map((e) => e.data)], defs);
  if (reached.length > 0) {
    lines.push("  $defs");
    for (const n of reached) lines.push(`    ${n}`, indent(JSON.stringify(defs[n], null, 2), "      "));
  }
  if (s.events.length > 0) lines.push(`  events of ${s.name}: ${s.events.map((e) => e.wireName).join(", ")}`);
  return lines.join("\n");
}

function eventText(s: ServiceModel, e: EventModel, defs: Record<string, JsonSchema>): string {
  const lines = [
    `${s.name}.${e.wireName}  ${e.description}`,
    `  exchange     ${s.exchange.name} (${s.exchange.type})`,
    `  routing key  ${e.routingKey}`,
    `  dead letters ${s.exchange.name}.${e.wireName}.<group>.dead (groups), ${s.exchange.name}.${e.wireName}.dead (broadcast)`,
    "",
    "  payload",
    pretty(e.payload),
  ];
  const examples = examplesOf(e.payload, defs);
  if (examples.length > 0) lines.push("  examples", ...examples.map((x) => `    ${JSON.stringify(x)}`));
  const reached = reachedDefs([e.payload], defs);
  if (reached.length > 0) {
    lines.push("  $defs");
    for (const n of reached) lines.push(`    ${n}`, indent(JSON.stringify(defs[n], null, 2), "      "));
  }
  return lines.join("\n");
}
