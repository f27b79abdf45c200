// Where every process of the mesh listens, derived from topology.json alone,
// so the generator, the mesh runner, a single instance started by hand and
// the chart all agree without a second list of ports.
//
// Each service owns the block of 40 ports that starts at its topology port P;
// replica r (0-based, at most 10 per service) uses:
//
//   P + r        the service instance itself (Node: gRPC, Connect, gRPC-Web, /metrics)
//   P + 10 + r   its sidecar's inbound listener: what other sidecars and the edge call
//   P + 20 + r   its sidecar's outbound listener: the instance's SHOP_REMOTE_ADDRESS
//   P + 30 + r   its sidecar's admin (stats, clusters, ready), on 127.0.0.1 only
//
// The edge listens on the topology's edge port E, its admin on E + 1, and the
// reflection backend it routes grpc.reflection.* to on E + 2.
//
// In Kubernetes every pod has its own network namespace, so every replica
// uses the r = 0 ports; the headless Service of a service points at P + 10.
// A port offset shifts every port (tests run a whole mesh beside `make mesh`).
import type { Topology } from "@shop/platform";

/** Replicas of one service beyond this would run into the next port range. */
export const MAX_REPLICAS = 10;
const BLOCK = 40;

export interface InstancePorts {
  readonly app: number;
  readonly inbound: number;
  readonly outbound: number;
  readonly admin: number;
}

export interface Instance {
  /** "catalog-1": the service and its replica index; names logs, sidecars and Envoy nodes. */
  readonly name: string;
  readonly service: string;
  readonly replica: number;
  readonly ports: InstancePorts;
}

export interface EdgePorts {
  readonly listener: number;
  readonly admin: number;
  readonly reflection: number;
}

export function instancePorts(topology: Topology, service: string, replica: number, offset = 0): InstancePorts {
  const s = topology.services[service];
  if (!s) throw new Error(`topology.json has no service ${service}`);
  if (!Number.isInteger(replica) || replica < 0 || replica >= Math.max(s.replicas, 1)) {
    throw new Error(`${service} has ${s.replicas} replica(s) in topology.json: no replica ${replica}`);
  }
  const base = s.port + offset;
  return { app: base + replica, inbound: base + 10 + replica, outbound: base + 20 + replica, admin: base + 30 + replica };
}

export function edgePorts(topology: Topology, offset = 0): EdgePorts {
  const port = (topology.edge?.port ?? 8080) + offset;
  return { listener: port, admin: port + 1, reflection: port + 2 };
}

/** Every service instance of the local mesh, services in topology order, replicas in order. */
export function instancesOf(topology: Topology, offset = 0): Instance[] {
  const out: Instance[] = [];
  for (const [service, s] of Object.entries(topology.services)) {
    for (let replica = 0; replica < s.replicas; replica++) {
      out.push({ name: `${service}-${replica}`, service, replica, ports: instancePorts(topology, service, replica, offset) });
    }
  }
  return out;
}

/**
 * Throws when the topology cannot be laid out by this scheme: too many
 * replicas, or two port blocks (or the edge's ports) overlapping.
 */
export function checkPortScheme(topology: Topology): void {
  const taken: Array<{ owner: string; from: number; to: number }> = [];
  const claim = (owner: string, from: number, to: number) => {
    if (from < 1 || to > 65535) throw new Error(`topology.json: ${owner} needs ports ${from}-${to}, outside 1-65535`);
    const clash = taken.find((t) => from <= t.to && t.from <= to);
    if (clash) throw new Error(`topology.json: ${owner} (ports ${from}-${to}) overlaps ${clash.owner} (ports ${clash.from}-${clash.to}); services need ${BLOCK} ports apart`);
    taken.push({ owner, from, to });
  };
  for (const [service, s] of Object.entries(topology.services)) {
    if (!Number.isInteger(s.replicas) || s.replicas < 1 || s.replicas > MAX_REPLICAS) {
      throw new Error(`topology.json: ${service} has ${s.replicas} replicas; the port scheme allows 1 to ${MAX_REPLICAS}`);
    }
    claim(service, s.port, s.port + BLOCK - 1);
  }
  const edge = edgePorts(topology);
  claim("the edge", edge.listener, edge.reflection);
}
