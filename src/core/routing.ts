/**
 * Routing keys of events: filling `{field}` placeholders from a payload on
 * publish, and the binding key a subscription uses by default. Pure functions.
 *
 * @see docs/PROTOCOL.md#events
 */
import type { EventDescriptor, ExchangeType } from "./descriptor.js";
import { RpcError, describeTarget } from "./errors.js";

const PLACEHOLDER = /\{([A-Za-z_][A-Za-z0-9_]*)\}/g;
/** AMQP limits routing keys (a shortstr) to 255 bytes. */
const MAX_KEY_BYTES = 255;

/** Field names of the `{field}` placeholders in a routing-key template, in order. */
export function placeholders(template: string): string[] {
  return [...template.matchAll(PLACEHOLDER)].map((m) => m[1]!);
}

/**
 * The routing key of one event: the template with each `{field}` replaced by
 * the payload's top-level field. A value must be a string, number or boolean
 * and may not contain `.`, `*` or `#` (it would change the key's words).
 * @throws RpcError `invalid_event` naming the field when a value is unusable.
 */
export function routingKeyFor(event: EventDescriptor<any>, payload: unknown): string {
  const parts = templateParts(event.routingKey);
  if (parts.length === 1) return event.routingKey;
  let key = parts[0]!;
  for (let i = 1; i < parts.length; i += 2) key += wordOf(event, parts[i]!, payload) + parts[i + 1]!;
  // A key of at most 85 UTF-16 units is at most 255 bytes: measured only when it could be longer.
  if (key.length > MAX_KEY_BYTES / 3 && Buffer.byteLength(key) > MAX_KEY_BYTES) {
    const target = { service: event.service.name, method: event.name };
    throw new RpcError("invalid_event", `${describeTarget(target)}: routing key is longer than ${MAX_KEY_BYTES} bytes`, target);
  }
  return key;
}

/** A routing-key template split once: literal, field, literal, … (odd indexes are field names). */
const parsedTemplates = new Map<string, readonly string[]>();

function templateParts(template: string): readonly string[] {
  let parts = parsedTemplates.get(template);
  if (parts === undefined) {
    parts = template.split(PLACEHOLDER);
    parsedTemplates.set(template, parts);
  }
  return parts;
}

/** The routing-key word of `field` in `payload`; throws `invalid_event` naming the field when it cannot be one. */
function wordOf(event: EventDescriptor<any>, field: string, payload: unknown): string {
  const value = (payload as Record<string, unknown> | null)?.[field];
  const target = () => ({ service: event.service.name, method: event.name });
  if (typeof value !== "string" && typeof value !== "number" && typeof value !== "boolean") {
    throw new RpcError("invalid_event", `${describeTarget(target())}: routing key "${event.routingKey}" needs /${field} to be a string, number or boolean`, target());
  }
  const text = typeof value === "string" ? value : String(value);
  if (text === "" || !isWord(text)) {
    throw new RpcError("invalid_event", `${describeTarget(target())}: /${field} = ${JSON.stringify(text)} cannot be a routing-key word (empty, or contains . * #)`, target());
  }
  return text;
}

/** True when `text` has no `.`, `*` or `#`. */
function isWord(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 46 || c === 42 || c === 35) return false;
  }
  return true;
}

/**
 * The binding key a subscription uses when it names none: for `topic`, the
 * template with every placeholder as `*` (all values); for `direct`, the key
 * itself (a template with placeholders needs an explicit key); `fanout` ignores keys.
 * @throws TypeError for a `direct` template with placeholders.
 */
export function defaultBindingKey(event: EventDescriptor<any>, type: ExchangeType): string {
  if (type === "fanout") return "";
  if (type === "topic") return event.routingKey.replace(PLACEHOLDER, "*");
  if (event.routingKey.includes("{")) {
    throw new TypeError(
      `warren: ${describeTarget({ service: event.service.name, method: event.name })}: the direct exchange needs an exact binding key; pass { bindingKey: "${event.routingKey.replace(PLACEHOLDER, "<$1>")}" }`,
    );
  }
  return event.routingKey;
}

/**
 * Checks a binding key for the exchange type: topic words are `*`, `#` or
 * free of both; at most 255 bytes.
 * @throws TypeError saying what is wrong.
 */
export function checkBindingKey(key: string, type: ExchangeType): string {
  if (Buffer.byteLength(key) > MAX_KEY_BYTES) throw new TypeError(`warren: binding key "${key.slice(0, 40)}…" is longer than ${MAX_KEY_BYTES} bytes`);
  if (type === "topic") {
    const bad = key.split(".").find((w) => w !== "*" && w !== "#" && /[*#]/.test(w));
    if (bad !== undefined) throw new TypeError(`warren: binding key "${key}": "${bad}" mixes * or # with other characters; a topic word is *, # or plain`);
  }
  return key;
}
