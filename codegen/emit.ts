/**
 * Stage 3: print the model as TypeScript files, in memory. One ts-morph
 * project serves the whole run; each file is built, formatted, read out and
 * dropped. Nothing here touches the disk.
 */
import { IndentationText, NewLineKind, Project, QuoteKind, ts, type SourceFile } from "ts-morph";
import { emitClient } from "./emit-client.js";
import { emitDescriptor } from "./emit-descriptor.js";
import { emitEvents } from "./emit-events.js";
import { emitRootIndex, emitServer, emitServiceIndex } from "./emit-server.js";
import { addErrorUnions, declareTypes, mentionedNames, serviceTypeSchemas } from "./emit-types.js";
import type { Model, ServiceModel } from "./model.js";
import { header } from "./text.js";

/** Formatting of every generated file. */
export const FORMAT = {
  indentSize: 2,
  tabSize: 2,
  convertTabsToSpaces: true,
  ensureNewLineAtEndOfFile: true,
  semicolons: ts.SemicolonPreference.Insert,
} as const;

/** Generated files by path relative to the output directory (posix separators), in a stable order. */
export type Plan = Map<string, string>;

/** Options of the emit stage. */
export interface EmitOptions {
  /** Module specifier of the warren runtime as seen from `<out>/<service>/`. */
  readonly runtime: string;
  /** Name of the schemas directory as shown in headers (`schemas`). */
  readonly schemasLabel: string;
}

/** Prints every file of `model`. */
export async function emitAll(model: Model, options: EmitOptions): Promise<Plan> {
  const project = new Project({
    useInMemoryFileSystem: true,
    manipulationSettings: { indentationText: IndentationText.TwoSpaces, quoteKind: QuoteKind.Double, newLineKind: NewLineKind.LineFeed },
  });
  const label = (file: string) => `${options.schemasLabel}/${file}`;
  const plan: Plan = new Map();
  const build = (path: string, source: string, fill: (file: SourceFile) => void) => {
    const file = project.createSourceFile(`/${path}`, "", { overwrite: true });
    fill(file);
    file.formatText(FORMAT);
    // json-schema-to-typescript leaves trailing blanks in its doc comments; strings never span lines, so this only touches comments.
    plan.set(path, `${header(source)}${file.getFullText().replace(/^\n+/, "").replace(/[ \t]+$/gm, "").replace(/\n{3,}/g, "\n\n")}`);
    project.removeSourceFile(file);
  };

  const [sharedCode, ...serviceCode] = await Promise.all([
    declareTypes(model.shared),
    ...model.services.map((s) => declareTypes(serviceTypeSchemas(s))),
  ]);
  if (model.shared.length > 0) {
    build("common/types.ts", model.sharedFiles.map(label).join(", "), (f) => f.addStatements(sharedCode ?? ""));
  }
  model.services.forEach((s, i) => emitService(s, serviceCode[i] ?? "", model, options, build, label(s.key)));
  build("index.ts", `${options.schemasLabel}/`, (f) => emitRootIndex(f, model));
  return plan;
}

function emitService(
  s: ServiceModel,
  typesCode: string,
  model: Model,
  options: EmitOptions,
  build: (path: string, source: string, fill: (file: SourceFile) => void) => void,
  source: string,
): void {
  const dir = s.names.dir;
  build(`${dir}/types.ts`, source, (f) => {
    const shared = mentionedNames(typesCode, s.sharedTypes);
    if (shared.length > 0) f.addImportDeclaration({ isTypeOnly: true, moduleSpecifier: "../common/types.js", namedImports: shared });
    f.addStatements((w) => w.blankLineIfLastNot().write(typesCode).blankLineIfLastNot());
    addErrorUnions(f, s);
    if (f.getStatements().length === 0) f.addStatements("export {};");
  });
  build(`${dir}/descriptor.ts`, source, (f) => emitDescriptor(f, s, model, options.runtime));
  build(`${dir}/client.ts`, source, (f) => emitClient(f, s, options.runtime));
  build(`${dir}/server.ts`, source, (f) => emitServer(f, s, options.runtime));
  if (s.events.length > 0) build(`${dir}/events.ts`, source, (f) => emitEvents(f, s, options.runtime));
  build(`${dir}/index.ts`, source, (f) => emitServiceIndex(f, s));
}
