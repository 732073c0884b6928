/**
 * `maxLength` / `minLength` without walking every string.
 *
 * JSON Schema counts a string's length in code points; Ajv's own keywords call
 * its runtime `ucs2length` on every checked string, which walks the whole
 * string (~2 ns a character: 7–8 µs for a 4,096-character string). A string of
 * UTF-16 length `len` has between `ceil(len / 2)` and `len` code points, so:
 *
 * - `maxLength: m` holds whenever `len <= m`, and fails whenever `len > 2m`;
 * - `minLength: n` fails whenever `len < n`, and holds whenever `ceil(len / 2) >= n`
 *   (`len >= 2n - 1` for an integer `n`).
 *
 * Only between those bounds are code points counted, and then only from the
 * string's first surrogate on (found by one native regex scan; a string
 * without any has as many code points as code units): Ajv's own `ucs2length`
 * counts the rest, so lone surrogates count as Ajv counts them.
 * Results and error objects are exactly Ajv's (same keyword, message, params,
 * schema paths, and the same position among the string keywords, so the order
 * of errors under `allErrors` is unchanged). `$data` limits and Ajv's
 * `unicode: false` option behave as with Ajv's keywords. The generated code
 * only references values with a `code` representation, so standalone code
 * generation keeps working.
 */
import { _, str, type Ajv2020, type CodeKeywordDefinition, type KeywordCxt, type KeywordErrorDefinition } from "ajv/dist/2020.js";
import ucs2lengthModule from "ajv/dist/runtime/ucs2length.js";

// ucs2length is CommonJS (`exports.default`); under NodeNext its default export arrives wrapped.
const ucs2length = ((ucs2lengthModule as unknown as { default?: unknown }).default ?? ucs2lengthModule) as ((s: string) => number) & { code: string };

/** Matches any UTF-16 surrogate code unit (no `u` flag: a pair's halves match too). */
const SURROGATE = /[\uD800-\uDFFF]/;

/** The keywords this module replaces, in the order Ajv declares them. */
const KEYWORDS = ["maxLength", "minLength"] as const;

/** Ajv's own error definition for the two keywords (vocabularies/validation/limitLength.js), verbatim. */
const error: KeywordErrorDefinition = {
  message({ keyword, schemaCode }) {
    const comp = keyword === "maxLength" ? "more" : "fewer";
    return str`must NOT have ${comp} than ${schemaCode} characters`;
  },
  params: ({ schemaCode }) => _`{limit: ${schemaCode}}`,
};

/** Emits the failure condition of `maxLength` / `minLength` for the string in `cxt.data`. */
function code(cxt: KeywordCxt): void {
  const { gen, keyword, data, schema, schemaCode, it } = cxt;
  const isMax = keyword === "maxLength";
  if (it.opts.unicode === false) {
    // Ajv's own behaviour with `unicode: false`: UTF-16 code units.
    cxt.fail$data(isMax ? _`${data}.length > ${schemaCode}` : _`${data}.length < ${schemaCode}`);
    return;
  }
  const count = gen.scopeValue("func", { ref: ucs2length, code: _`require("ajv/dist/runtime/ucs2length").default` });
  const surrogate = gen.scopeValue("pattern", { key: "warren:string-length:surrogate", ref: SURROGATE, code: _`new RegExp(${SURROGATE.source})` });
  // Index of the first surrogate (-1: none); the code units before it are one code point each.
  const first = gen.let("firstSurrogate");
  const codePoints = _`${first} + ${count}(${data}.slice(${first}))`;
  if (isMax) {
    // Fails iff codePoints > m. codePoints <= len, so len <= m passes; codePoints >= len / 2, so len > 2m fails;
    // without a surrogate codePoints === len (> m here).
    const twice = cxt.$data ? _`2 * ${schemaCode}` : _`${2 * (schema as number)}`;
    cxt.fail$data(_`${data}.length > ${schemaCode} && (${data}.length > ${twice} || (${first} = ${data}.search(${surrogate})) < 0 || ${codePoints} > ${schemaCode})`);
  } else {
    // Fails iff codePoints < n. codePoints >= ceil(len / 2), so len >= 2n - 1 passes (integer n; len >= 2n for any n);
    // codePoints <= len, so len < n fails; without a surrogate codePoints === len (>= n here).
    const n = schema as number;
    const bound = cxt.$data ? _`2 * ${schemaCode}` : Number.isInteger(n) ? _`${2 * n - 1}` : _`${2 * n}`;
    cxt.fail$data(_`${data}.length < ${bound} && (${data}.length < ${schemaCode} || ((${first} = ${data}.search(${surrogate})) >= 0 && ${codePoints} < ${schemaCode}))`);
  }
}

/** The keyword definition replacing Ajv's `maxLength` or `minLength`. */
function definition(keyword: (typeof KEYWORDS)[number], before: string | undefined): CodeKeywordDefinition {
  return { keyword, type: "string", schemaType: "number", $data: true, error, code, ...(before === undefined ? {} : { before }) };
}

/**
 * Replaces `ajv`'s `maxLength` and `minLength` keywords with ones that count
 * code points only when a string's UTF-16 length cannot decide the check.
 * Validation results and error objects are identical to Ajv's. Call it before
 * compiling any schema with `ajv` (schemas compiled earlier keep Ajv's
 * keywords); calling it again is harmless.
 */
export function useFastStringLength(ajv: Ajv2020): void {
  // Re-add each keyword where it was among the string rules, so errors keep their order under allErrors.
  const order = ajv.RULES.rules.find((group) => group.type === "string")?.rules.map((rule) => rule.keyword) ?? [];
  const before = KEYWORDS.map((keyword) => {
    const i = order.indexOf(keyword);
    return i < 0 ? undefined : order.slice(i + 1).find((k) => !(KEYWORDS as readonly string[]).includes(k));
  });
  for (const keyword of KEYWORDS) ajv.removeKeyword(keyword);
  KEYWORDS.forEach((keyword, i) => ajv.addKeyword(definition(keyword, before[i])));
}
