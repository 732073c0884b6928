/**
 * client.ts of a service: a stub class whose methods are one-line calls into
 * the transport. The transport lives in an ES private field, so no method name
 * can collide with it.
 */
import type { SourceFile } from "ts-morph";
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

/** Fills `file` with the client stub class. */
export function emitClient(file: SourceFile, service: ServiceModel, runtime: string): void {
  const { client, descriptor } = service.names;
  const hasMethods = service.methods.length > 0;
  file.addImportDeclaration({ isTypeOnly: true, moduleSpecifier: runtime, namedImports: hasMethods ? ["CallOptions", "RpcTransport"] : ["RpcTransport"] });
  if (hasMethods) {
    file.addImportDeclaration({ moduleSpecifier: "./descriptor.js", namedImports: [descriptor] });
    file.addImportDeclaration({ isTypeOnly: true, moduleSpecifier: "./types.js", namedImports: typeImports(service, ["request", "response"]) });
  }
  file.addClass({
    name: client,
    isExported: true,
    docs: [docText(`${service.description}\n\nClient of ${service.name}: each method sends one request to \`${service.queue}\` and resolves with the validated response, or rejects with an \`RpcError\`.`)],
    // A service without methods keeps the same constructor but stores nothing (an unread field fails noUnusedLocals).
    properties: hasMethods ? [{ name: "#transport", isReadonly: true, type: "RpcTransport" }] : [],
    ctors: [{
      docs: ["@param transport Carries the calls, e.g. a connected warren client."],
      parameters: [{ name: hasMethods ? "transport" : "_transport", type: "RpcTransport" }],
      // Validators compiled now, not on the first call (which would pay for them inside its budget).
      statements: hasMethods ? ["this.#transport = transport;", `transport.prepare?.(${descriptor});`] : [],
    }],
    methods: service.methods.map((m) => ({
      name: m.tsName,
      docs: [methodDoc(m)],
      parameters: [
        { name: "request", type: m.types.request },
        { name: "options", type: "CallOptions", hasQuestionToken: true },
      ],
      returnType: `Promise<${m.types.response}>`,
      statements: `return this.#transport.call(${descriptor}.methods.${m.tsName}, request, options);`,
    })),
  });
}
