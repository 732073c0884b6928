import { describe } from "vitest";
import { memoryEnv } from "./env.js";
import { conformanceSuite } from "./suite.js";

describe("conformance on the in-memory test kit", () => conformanceSuite(memoryEnv));
