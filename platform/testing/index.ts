export { createEchoService, EchoService } from "./echo-service.ts";
export type { EchoOptions } from "./echo-service.ts";
