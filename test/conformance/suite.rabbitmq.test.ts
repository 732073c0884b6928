import { describe } from "vitest";
import { rabbitmqEnv } from "./env.js";
import { conformanceSuite } from "./suite.js";

describe("conformance on RabbitMQ", () => conformanceSuite(rabbitmqEnv));
