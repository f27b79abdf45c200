// The console's clients: they speak with the operator's token, and load only
// with the console, so shoppers never download the operations contracts.
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { EventAdminService } from "../../../gen/mesh/v1/events_pb.js";
import { OpsService } from "../../../gen/mesh/v1/ops_pb.js";
import { baseUrl, bearer, tracing } from "../api.ts";
import { operatorToken } from "../session.ts";

const operatorTransport = createConnectTransport({ baseUrl, interceptors: [tracing, bearer(operatorToken.get)] });

export const ops = createClient(OpsService, operatorTransport);
export const eventAdmin = createClient(EventAdminService, operatorTransport);
