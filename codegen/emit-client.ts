/**
 * client.ts of a service: a stub class whose methods are one-line calls into
 * the transport. The transport lives in an ES private field, so no method name
 * can collide with it.
 */
import { docComment, importLine, params } from "./emit-text.js";
import type { MethodModel, ServiceModel } from "./model.js";
import { docText } from "./text.js";

/** The JSDoc of a method, shared by the client stub and the handlers interface. */
export function methodDoc(m: MethodModel): string {
  const parts = [m.description];
  if (m.errors.length > 0) parts.push(`Errors:\n${m.errors.map((e) => `- \`${e.code}\`: ${e.description}`).join("\n")}`);
  const traits = [m.idempotent ? "Idempotent: safe to retry." : "", m.timeoutMs === undefined ? "" : `Default timeout: ${m.timeoutMs} ms.`].filter(Boolean);
  if (traits.length > 0) parts.push(traits.join(" "));
  return docText(parts.join("\n\n"));
}

/** Names of the types `./types.js` must provide to a module that uses the given parts of each method. */
export function typeImports(service: ServiceModel, parts: ReadonlyArray<"request" | "response" | "error">): string[] {
  return [...new Set(service.methods.flatMap((m) => parts.map((p) => m.types[p])))].sort();
}

/** The client module of `service` (without the header). */
export function emitClient(service: ServiceModel, runtime: string): string {
  const { client, descriptor } = service.names;
  const hasMethods = service.methods.length > 0;
  let out = importLine(hasMethods ? ["CallOptions", "RpcTransport"] : ["RpcTransport"], runtime, true);
  if (hasMethods) {
    out += importLine([descriptor], "./descriptor.js");
    out += importLine(typeImports(service, ["request", "response"]), "./types.js", true);
  }
  out += "\n";
  out += docComment(docText(`${service.description}\n\nClient of ${service.name}: each method sends one request to \`${service.queue}\` and resolves with the validated response, or rejects with an \`RpcError\`.`));
  out += `export class ${client} {\n`;
  // A service without methods keeps the same constructor but stores nothing (an unread field fails noUnusedLocals).
  if (hasMethods) out += "  readonly #transport: RpcTransport;\n\n";
  out += docComment("@param transport Carries the calls, e.g. a connected warren client.", "  ");
  out += `  constructor(${hasMethods ? "transport" : "_transport"}: RpcTransport) {\n`;
  // Validators compiled now, not on the first call (which would pay for them inside its budget).
  if (hasMethods) out += `    this.#transport = transport;\n    transport.prepare?.(${descriptor});\n`;
  out += "  }\n";
  for (const m of service.methods) {
    out += `\n${docComment(methodDoc(m), "  ")}`;
    out += `  ${m.tsName}(${params([["request", m.types.request], ["options", "CallOptions", true]])}): Promise<${m.types.response}> {\n`;
    out += `    return this.#transport.call(${descriptor}.methods.${m.tsName}, request, options);\n  }\n`;
  }
  return `${out}}\n`;
}
