/**
 * server.ts of a service (the handlers interface and a one-line binder) and
 * the index modules that re-export each service and the shared types.
 */
import { methodDoc, typeImports } from "./emit-client.js";
import { docComment, exportLine, importLine, params } from "./emit-text.js";
import type { Model, ServiceModel } from "./model.js";
import { interfaceMethodName } from "./naming.js";
import { docText } from "./text.js";

/** The server module of `service`, `<Service>Handlers` and `serve<Service>` (without the header). */
export function emitServer(service: ServiceModel, runtime: string): string {
  const { descriptor, handlers, serve } = service.names;
  const typeNames = typeImports(service, ["request", "response", "error"]);
  let out = importLine([...(typeNames.length > 0 ? ["HandlerContext"] : []), "RegisterOptions", "Registration", "RpcServer"], runtime, true);
  out += importLine([descriptor], "./descriptor.js");
  if (typeNames.length > 0) out += importLine(typeNames, "./types.js", true);
  out += "\n";
  out += docComment(docText(`${service.description}\n\nWhat a ${service.name} server implements: one handler per method. Return the response (or a promise of it); throw \`ctx.error(code, data)\` for a declared error.`));
  out += `export interface ${handlers} {\n`;
  for (const m of service.methods) {
    out += docComment(methodDoc(m), "  ");
    out += `  ${interfaceMethodName(m.tsName)}(${params([["request", m.types.request], ["ctx", `HandlerContext<${m.types.error}>`]])}): ${m.types.response} | Promise<${m.types.response}>;\n`;
  }
  out += "}\n\n";
  out += docComment(`Serves ${service.name} on \`server\` with \`handlers\`; resolves once its queue is being consumed.`);
  out += `export function ${serve}(${params([["server", "RpcServer"], ["handlers", handlers], ["options", "RegisterOptions", true]])}): Promise<Registration> {\n`;
  out += `  return server.register(${descriptor}, handlers, options);\n}\n`;
  return out;
}

/** Type names a service's types.ts exports. */
export function exportedTypeNames(service: ServiceModel): string[] {
  const names = service.ownDefs.map((d) => d.name);
  for (const m of service.methods) {
    names.push(m.types.request, m.types.response, m.types.error, ...m.errors.flatMap((e) => (e.dataType ? [e.dataType] : [])));
  }
  names.push(...service.events.map((e) => e.payloadType));
  return [...new Set(names)];
}

/** A service's index module: its descriptor, client, binder, event classes and types (without the header). */
export function emitServiceIndex(service: ServiceModel): string {
  const { descriptor, client, handlers, serve } = service.names;
  let out = exportLine([descriptor], "./descriptor.js");
  if (service.methods.length > 0) {
    out += exportLine([client], "./client.js");
    out += exportLine([serve], "./server.js");
    out += exportLine([handlers], "./server.js", true);
  }
  if (service.events.length > 0) out += exportLine([service.names.publisher, service.names.subscriber], "./events.js");
  const types = exportedTypeNames(service);
  if (types.length > 0) out += exportLine(types, "./types.js", true);
  if (service.sharedTypes.length > 0) out += exportLine(service.sharedTypes, "../common/types.js", true);
  return out;
}

/** The top-level index module: every service's public names, its types as a namespace, and the shared types (without the header). */
export function emitRootIndex(model: Model): string {
  let out = "";
  for (const s of model.services) {
    const from = `./${s.names.dir}/index.js`;
    const eventClasses = s.events.length > 0 ? [s.names.publisher, s.names.subscriber] : [];
    const rpc = s.methods.length > 0 ? [s.names.client, s.names.serve] : [];
    out += exportLine([s.names.descriptor, ...rpc, ...eventClasses], from);
    if (s.methods.length > 0) out += exportLine([s.names.handlers], from, true);
    if (exportedTypeNames(s).length > 0) out += `export type * as ${s.names.types} from "./${s.names.dir}/types.js";\n`;
  }
  if (model.shared.length > 0) out += exportLine(model.shared.map((d) => d.name), "./common/types.js", true);
  if (model.services.length === 0 && model.shared.length === 0) out += "export { };\n";
  return out;
}
