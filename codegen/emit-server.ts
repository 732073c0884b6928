/**
 * server.ts of a service (the handlers interface and a one-line binder) and
 * the index modules that re-export each service and the shared types.
 */
import type { SourceFile } from "ts-morph";
import { methodDoc, typeImports } from "./emit-client.js";
import type { Model, ServiceModel } from "./model.js";
import { interfaceMethodName } from "./naming.js";
import { docText } from "./text.js";

/** Fills `file` with `<Service>Handlers` and `serve<Service>`. */
export function emitServer(file: SourceFile, service: ServiceModel, runtime: string): void {
  const { descriptor, handlers, serve } = service.names;
  const typeNames = typeImports(service, ["request", "response", "error"]);
  file.addImportDeclaration({
    isTypeOnly: true,
    moduleSpecifier: runtime,
    namedImports: [...(typeNames.length > 0 ? ["HandlerContext"] : []), "RegisterOptions", "Registration", "RpcServer"],
  });
  file.addImportDeclaration({ moduleSpecifier: "./descriptor.js", namedImports: [descriptor] });
  if (typeNames.length > 0) file.addImportDeclaration({ isTypeOnly: true, moduleSpecifier: "./types.js", namedImports: typeNames });
  file.addInterface({
    name: handlers,
    isExported: true,
    docs: [docText(`${service.description}\n\nWhat a ${service.name} server implements: one handler per method. Return the response (or a promise of it); throw \`ctx.error(code, data)\` for a declared error.`)],
    methods: service.methods.map((m) => ({
      name: interfaceMethodName(m.tsName),
      docs: [methodDoc(m)],
      parameters: [
        { name: "request", type: m.types.request },
        { name: "ctx", type: `HandlerContext<${m.types.error}>` },
      ],
      returnType: `${m.types.response} | Promise<${m.types.response}>`,
    })),
  });
  file.addFunction({
    name: serve,
    isExported: true,
    docs: [`Serves ${service.name} on \`server\` with \`handlers\`; resolves once its queue is being consumed.`],
    parameters: [
      { name: "server", type: "RpcServer" },
      { name: "handlers", type: handlers },
      { name: "options", type: "RegisterOptions", hasQuestionToken: true },
    ],
    returnType: "Promise<Registration>",
    statements: `return server.register(${descriptor}, handlers, options);`,
  });
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

/** Fills `file` with a service's index: its descriptor, client, binder, event classes and types. */
export function emitServiceIndex(file: SourceFile, service: ServiceModel): void {
  const { descriptor, client, handlers, serve } = service.names;
  file.addExportDeclaration({ moduleSpecifier: "./descriptor.js", namedExports: [descriptor] });
  file.addExportDeclaration({ moduleSpecifier: "./client.js", namedExports: [client] });
  file.addExportDeclaration({ moduleSpecifier: "./server.js", namedExports: [serve] });
  file.addExportDeclaration({ isTypeOnly: true, moduleSpecifier: "./server.js", namedExports: [handlers] });
  if (service.events.length > 0) file.addExportDeclaration({ moduleSpecifier: "./events.js", namedExports: [service.names.publisher, service.names.subscriber] });
  const types = exportedTypeNames(service);
  if (types.length > 0) file.addExportDeclaration({ isTypeOnly: true, moduleSpecifier: "./types.js", namedExports: types });
  if (service.sharedTypes.length > 0) {
    file.addExportDeclaration({ isTypeOnly: true, moduleSpecifier: "../common/types.js", namedExports: [...service.sharedTypes] });
  }
}

/** Fills `file` with the top-level index: every service's public names, its types as a namespace, and the shared types. */
export function emitRootIndex(file: SourceFile, model: Model): void {
  for (const s of model.services) {
    const from = `./${s.names.dir}/index.js`;
    const eventClasses = s.events.length > 0 ? [s.names.publisher, s.names.subscriber] : [];
    file.addExportDeclaration({ moduleSpecifier: from, namedExports: [s.names.descriptor, s.names.client, s.names.serve, ...eventClasses] });
    file.addExportDeclaration({ isTypeOnly: true, moduleSpecifier: from, namedExports: [s.names.handlers] });
    if (exportedTypeNames(s).length > 0) file.addExportDeclaration({ isTypeOnly: true, moduleSpecifier: `./${s.names.dir}/types.js`, namespaceExport: s.names.types });
  }
  if (model.shared.length > 0) {
    file.addExportDeclaration({ isTypeOnly: true, moduleSpecifier: "./common/types.js", namedExports: model.shared.map((d) => d.name) });
  }
  if (model.services.length === 0 && model.shared.length === 0) file.addStatements("export {};");
}
