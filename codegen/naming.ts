/**
 * Every case conversion and naming rule of the generator. Contract names are
 * identifiers of letters, digits and `_`; TypeScript names derive from them here
 * and nowhere else.
 */

/** Names a method may not take: they would shadow `Object.prototype` members, make a client thenable (`then`), or confuse JSON serialisation. */
export const RESERVED_METHOD_NAMES: ReadonlySet<string> = new Set([
  ...Object.getOwnPropertyNames(Object.prototype),
  "then",
  "catch",
  "finally",
  "toJSON",
  "prototype",
]);

/** True for an ASCII identifier (what the meta-schema allows for names). */
export function isIdentifier(name: string): boolean {
  return /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(name);
}

function words(name: string): string[] {
  return name.split("_").filter((w) => w !== "");
}

function capitalize(word: string): string {
  return word.charAt(0).toUpperCase() + word.slice(1);
}

/** `add_point` -> `addPoint`, `GetUser` -> `getUser`, `delete` -> `delete`. */
export function camelCase(name: string): string {
  const [first = "", ...rest] = words(name);
  return first.charAt(0).toLowerCase() + first.slice(1) + rest.map(capitalize).join("");
}

/** `add_point` -> `AddPoint`, `division_by_zero` -> `DivisionByZero`. */
export function pascalCase(name: string): string {
  return words(name).map(capitalize).join("");
}

/** `Calculator` -> `calculator`, `HTTPGateway` -> `http-gateway`, `Points2D` -> `points2-d`. */
export function kebabCase(name: string): string {
  return name
    .replace(/([a-z0-9])([A-Z])/g, "$1-$2")
    .replace(/([A-Z]+)([A-Z][a-z])/g, "$1-$2")
    .replace(/_/g, "-")
    .toLowerCase();
}

/** Type names derived from a method's TypeScript name. */
export function methodTypeNames(tsName: string): { request: string; response: string; error: string } {
  const base = capitalize(tsName);
  return { request: `${base}Request`, response: `${base}Response`, error: `${base}Error` };
}

/** Type of a declared error's data: `divide` + `division_by_zero` -> `DivideDivisionByZeroData`. */
export function errorDataTypeName(tsName: string, code: string): string {
  return `${capitalize(tsName)}${pascalCase(code)}Data`;
}

/** Type of an event's payload: `order_created` (`orderCreated`) -> `OrderCreatedEvent`. */
export function eventTypeName(tsName: string): string {
  return `${capitalize(tsName)}Event`;
}

/** Member names of an event in the generated publisher and subscriber: `publishOrderCreated`, `onOrderCreated`. */
export function eventMemberNames(tsName: string): { publish: string; on: string } {
  return { publish: `publish${capitalize(tsName)}`, on: `on${capitalize(tsName)}` };
}

/** Exported names of one service's generated modules. */
export function serviceNames(service: string): {
  descriptor: string;
  client: string;
  handlers: string;
  serve: string;
  publisher: string;
  subscriber: string;
  types: string;
  dir: string;
} {
  return {
    descriptor: service,
    client: `${service}Client`,
    handlers: `${service}Handlers`,
    serve: `serve${service}`,
    publisher: `${service}Publisher`,
    subscriber: `${service}Subscriber`,
    types: `${service}Types`,
    dir: kebabCase(service),
  };
}

/** Name of the exported handlers object in a scaffold: `Calculator` -> `calculatorHandlers`. */
export function scaffoldHandlersName(service: string): string {
  return `${service.charAt(0).toLowerCase()}${service.slice(1)}Handlers`;
}

/** Names the runtime import brings into generated modules; a contract name may not shadow them. */
export const RUNTIME_IMPORTS: readonly string[] = [
  "CallOptions",
  "RpcTransport",
  "HandlerContext",
  "RpcServer",
  "RegisterOptions",
  "Registration",
  "defineService",
  "method",
  "RpcError",
  "event",
  "EventTransport",
  "EventHandler",
  "PublishOptions",
  "SubscribeOptions",
  "Subscription",
];

/** A method name as written in an interface: `new(...)` there would declare a construct signature, so it is quoted. */
export function interfaceMethodName(tsName: string): string {
  return tsName === "new" ? '"new"' : tsName;
}
