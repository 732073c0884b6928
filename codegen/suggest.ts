/** "Did you mean" for misspelt names: the runtime's helper (src/core/suggest.ts), which the generator shares. */
export { closest, didYouMean } from "../src/core/suggest.js";
