// What the contract says about a method: its default deadline, who may call
// it and whether a retry is safe. Read once per method from the descriptors
// that protoc-gen-es embeds, so the protos stay the single source of truth.
import { getOption, hasOption } from "@bufbuild/protobuf";
import type { DescMethod } from "@bufbuild/protobuf";
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import { Audience, policy } from "../gen/mesh/v1/options_pb.js";

export type AudienceName = "public" | "user" | "service";

export interface MethodContract {
  /** Fully qualified path, "/shop.users.v1.UserService/SignUp". */
  readonly path: string;
  /** Deadline applied when the caller sends none; undefined means no deadline. */
  readonly deadlineMs: number | undefined;
  readonly audience: AudienceName;
  /** True for NO_SIDE_EFFECTS and IDEMPOTENT methods: safe to retry. */
  readonly retrySafe: boolean;
  readonly readOnly: boolean;
  readonly streaming: boolean;
}

const cache = new WeakMap<DescMethod, MethodContract>();

/** Methods without a policy (health, reflection) are public and have no default deadline. */
export function contractOf(method: DescMethod): MethodContract {
  let contract = cache.get(method);
  if (contract === undefined) {
    const declared = hasOption(method, policy) ? getOption(method, policy) : undefined;
    const readOnly = method.idempotency === MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS;
    contract = {
      path: `/${method.parent.typeName}/${method.name}`,
      deadlineMs: declared && declared.deadlineMs > 0 ? declared.deadlineMs : undefined,
      audience: audienceName(declared?.audience ?? Audience.PUBLIC),
      retrySafe: readOnly || method.idempotency === MethodOptions_IdempotencyLevel.IDEMPOTENT,
      readOnly,
      streaming: method.methodKind !== "unary",
    };
    cache.set(method, contract);
  }
  return contract;
}

function audienceName(audience: Audience): AudienceName {
  switch (audience) {
    case Audience.USER:
      return "user";
    case Audience.SERVICE:
      return "service";
    default:
      return "public";
  }
}
