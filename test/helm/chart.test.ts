// The Helm chart, offline: helm lint and helm template (pinned helm) for the
// default values and a production-like values file, every rendered object
// validated against the Kubernetes 1.30 API (tools-src/kubevalidate), and then
// what matters, derived independently of the chart from topology.json, the
// port scheme, the contracts and the Envoy generator: one sidecar per service
// running the generator's config; gRPC health probes; NetworkPolicies that
// allow exactly topology.json's calls; no root; every Secret documented.
import { expect } from "chai";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadTopology } from "@shop/platform";
import { loadServiceDescriptors } from "../../envoy/contracts.ts";
import { findEnvoy } from "../../envoy/find-envoy.ts";
import { chartFilesRoot, generateConfigs, generatedRoot } from "../../envoy/generate.ts";
import type { GeneratedConfig } from "../../envoy/generate.ts";
import { edgePorts, instancePorts } from "../../envoy/ports.ts";
import { repoRoot } from "../support/process.ts";
import { allContainers, argAfter, chartDir, envValue, find, get, helmLint, helmTemplate, matchesLabels, mergeValues, ofKind, podTemplates, render, yamlToJson } from "./render.ts";
import type { Json, RenderOptions, Rendering } from "./render.ts";
import { ensureHelm, ensureKubevalidate, run } from "./tools.ts";

const topology = loadTopology();
const serviceNames = Object.keys(topology.services);
const edgePortsK8s = edgePorts(topology);

const renderings: Array<{ title: string; options: RenderOptions }> = [
  { title: "default values", options: { namespace: "shop" } },
  { title: "production-like values (helm/shop/ci/production-values.yaml)", options: { namespace: "shop-prod", valuesFiles: ["helm/shop/ci/production-values.yaml"] } },
];

/** services.<name> over serviceDefaults, as the chart merges them. */
function serviceValues(r: Rendering, name: string): Json {
  return mergeValues(r.values.serviceDefaults, r.values.services[name] ?? {});
}

function enabledServices(r: Rendering): string[] {
  return serviceNames.filter((s) => serviceValues(r, s).enabled);
}

function podOf(r: Rendering, deployment: string): Json {
  return get(r, "Deployment", deployment).spec.template;
}

function sidecarsOf(pod: Json): Json[] {
  return allContainers(pod.spec).filter((c) => String(c.image).includes("envoy"));
}

function container(pod: Json, name: string): Json {
  const found = allContainers(pod.spec).find((c) => c.name === name);
  if (!found) throw new Error(`no container ${name}`);
  return found;
}

/** The data of the ConfigMap volume mounted at the container's path. */
function mountedConfigMap(r: Rendering, pod: Json, c: Json, mountPath: string): Json {
  const mount = (c.volumeMounts ?? []).find((m: Json) => m.mountPath === mountPath);
  if (!mount) throw new Error(`${c.name} mounts nothing at ${mountPath}`);
  const volume = pod.spec.volumes.find((v: Json) => v.name === mount.name);
  return get(r, "ConfigMap", volume.configMap.name).data;
}

/** Port numbers a NetworkPolicy rule names. */
function rulePorts(rule: Json): number[] {
  return (rule.ports ?? []).map((p: Json) => p.port);
}

describe("Helm chart helm/shop (offline: helm lint, helm template, Kubernetes 1.30 API)", function () {
  this.timeout(600_000);
  let healthNames: Map<string, string>;

  before(async function () {
    await Promise.all([ensureHelm(), ensureKubevalidate()]);
    const descriptors = await loadServiceDescriptors(topology);
    healthNames = new Map(serviceNames.map((s) => [s, descriptors.get(s)?.[0]?.typeName ?? ""]));
  });

  it("carries the generator's kubernetes target and topology.json verbatim in files/ (run `make generate-envoy` when this fails)", function () {
    const generated = join(generatedRoot, "kubernetes");
    const files = [...new Set([...ofFolder(generated), ...ofFolder(join(chartFilesRoot, "envoy"))])];
    for (const file of files) {
      expect(readFileSync(join(chartFilesRoot, "envoy", file), "utf8"), `helm/shop/files/envoy/${file}`).to.equal(readFileSync(join(generated, file), "utf8"));
    }
    expect(readFileSync(join(chartFilesRoot, "topology.json"), "utf8")).to.equal(readFileSync(join(repoRoot, "topology.json"), "utf8"));
  });

  for (const { title, options } of renderings) {
    describe(title, function () {
      let r: Rendering;
      let generated: GeneratedConfig[];

      before(async function () {
        r = await render(options);
        generated = await generateConfigs({ target: "kubernetes", namespace: options.namespace });
      });

      it("passes helm lint --strict, values.schema.json included", async function () {
        const lint = await helmLint(options);
        expect(lint.ok, lint.output).to.equal(true);
      });

      it("renders only objects that decode strictly into the Kubernetes 1.30 API types and pass its rules", function () {
        expect(r.problems).to.deep.equal([]);
        const kinds = new Set(r.objects.map((o) => `${o.apiVersion} ${o.kind}`));
        for (const expected of ["apps/v1 Deployment", "v1 Service", "v1 ConfigMap", "v1 ServiceAccount", "networking.k8s.io/v1 NetworkPolicy", "policy/v1 PodDisruptionBudget", "batch/v1 Job"]) {
          expect([...kinds]).to.include(expected);
        }
        for (const o of r.objects) expect(o.namespace, `${o.kind}/${o.name}`).to.equal(options.namespace);
      });

      it("gives every enabled service a Deployment whose pod has exactly one Envoy sidecar, running the generator's config for this namespace", function () {
        for (const s of enabledServices(r)) {
          const pod = podOf(r, s);
          const sidecars = sidecarsOf(pod);
          expect(sidecars.map((c) => c.name), s).to.deep.equal(["envoy"]);
          const [envoy] = sidecars;
          // A native sidecar: started before the service, stopped after it.
          expect(pod.spec.initContainers.map((c: Json) => c.name), s).to.deep.equal(["envoy"]);
          expect(envoy.restartPolicy, s).to.equal("Always");
          expect(pod.spec.containers.map((c: Json) => c.name), s).to.deep.equal(["app"]);
          expect(argAfter(envoy, "-c"), s).to.equal(`/etc/envoy/sidecar-${s}.yaml`);
          const data = mountedConfigMap(r, pod, envoy, "/etc/envoy");
          const expected = generated.find((g) => g.file === `sidecar-${s}.yaml`);
          expect(Object.keys(data), s).to.deep.equal([`sidecar-${s}.yaml`]);
          expect(data[`sidecar-${s}.yaml`], `${s}: the ConfigMap differs from generateConfigs({ target: "kubernetes", namespace: "${options.namespace}" })`).to.equal(expected?.text);
        }
        // The Envoy configs of the default namespace are the committed files themselves.
        if (options.namespace === "shop") {
          for (const s of enabledServices(r)) {
            expect(get(r, "ConfigMap", `${s}-envoy`).data[`sidecar-${s}.yaml`]).to.equal(readFileSync(join(generatedRoot, "kubernetes", `sidecar-${s}.yaml`), "utf8"));
          }
        }
        const edge = podOf(r, "edge");
        const edgeEnvoy = container(edge, "envoy");
        expect(sidecarsOf(edge).length).to.equal(1);
        expect(argAfter(edgeEnvoy, "-c")).to.equal("/etc/envoy/edge.yaml");
        expect(mountedConfigMap(r, edge, edgeEnvoy, "/etc/envoy")["edge.yaml"]).to.equal(generated.find((g) => g.file === "edge.yaml")?.text);
      });

      it("adds to each generated config only the metrics listeners, reading Envoy's admin and the service's /metrics on loopback", async function () {
        for (const deployment of [...enabledServices(r), "edge"]) {
          const envoy = container(podOf(r, deployment), "envoy");
          const extra = await yamlToJson(argAfter(envoy, "--config-yaml") ?? "");
          expect(Object.keys(extra), deployment).to.deep.equal(["static_resources"]);
          const ports = deployment === "edge" ? { admin: edgePortsK8s.admin, app: undefined } : instancePorts(topology, deployment, 0);
          const listeners = extra.static_resources.listeners.map((l: Json) => [l.name, l.address.socket_address.port_value]);
          const clusters = extra.static_resources.clusters.map((c: Json) => [c.name, c.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address]);
          const expectedListeners: Array<[string, number]> = [["envoy_metrics", r.values.metrics.envoyPort]];
          const expectedClusters: Array<[string, Json]> = [["envoy_admin", { address: "127.0.0.1", port_value: ports.admin }]];
          if (ports.app !== undefined) {
            expectedListeners.push(["app_metrics", r.values.metrics.appPort]);
            expectedClusters.push(["app_metrics", { address: "127.0.0.1", port_value: ports.app }]);
          }
          expect(listeners, deployment).to.deep.equal(expectedListeners);
          expect(clusters, deployment).to.deep.equal(expectedClusters);
          const paths = extra.static_resources.listeners.flatMap((l: Json) => l.filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes.map((x: Json) => x.match.path));
          expect(paths.sort(), deployment).to.deep.equal((ports.app !== undefined ? ["/metrics", "/ready", "/stats/prometheus"] : ["/ready", "/stats/prometheus"]).sort());
        }
      });

      it("starts every Envoy with a command line `envoy --mode validate` accepts (its ConfigMap plus the chart's listeners)", async function () {
        const envoyBin = findEnvoy();
        const scratch = mkdtempSync(join(tmpdir(), "shop-helm-envoy-"));
        try {
          const checks = [...enabledServices(r), "edge"].map(async (deployment) => {
            const pod = podOf(r, deployment);
            const envoy = container(pod, "envoy");
            const file = (argAfter(envoy, "-c") ?? "").split("/").pop() ?? "";
            const path = join(scratch, `${deployment}-${file}`);
            writeFileSync(path, mountedConfigMap(r, pod, envoy, "/etc/envoy")[file]);
            const args = [...envoy.args];
            args[args.indexOf("-c") + 1] = path;
            const v = await run(envoyBin, ["--mode", "validate", ...args], { timeoutMs: 60_000 });
            return { deployment, ok: v.code === 0, output: `${v.stdout}${v.stderr}`.trim() };
          });
          for (const v of await Promise.all(checks)) expect(v.ok, `${v.deployment}: ${v.output}`).to.equal(true);
        } finally {
          rmSync(scratch, { recursive: true, force: true });
        }
      });

      it("probes every service with native gRPC probes on grpc.health.v1, through the sidecar route that reaches it", function () {
        for (const s of enabledServices(r)) {
          const app = container(podOf(r, s), "app");
          const ports = instancePorts(topology, s, 0);
          expect(app.readinessProbe?.grpc, s).to.deep.equal({ port: ports.inbound, service: healthNames.get(s) });
          expect(app.livenessProbe?.grpc, s).to.deep.equal({ port: ports.inbound });
          expect(app.startupProbe?.grpc, s).to.deep.equal({ port: ports.inbound });
          // The sidecar's listener on that port sends grpc.health.v1.Health/Check to the service on loopback.
          const config = generated.find((g) => g.file === `sidecar-${s}.yaml`)?.config as Json;
          const inbound = config.static_resources.listeners.find((l: Json) => l.address.socket_address.port_value === ports.inbound);
          expect(inbound.address.socket_address.address, s).to.equal("0.0.0.0");
          const routes = inbound.filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes;
          const check = routes.find((x: Json) => x.match.path === "/grpc.health.v1.Health/Check");
          expect(check?.match.headers, s).to.equal(undefined);
          const cluster = config.static_resources.clusters.find((c: Json) => c.name === check.route.cluster);
          expect(cluster.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address, s).to.deep.equal({ address: "127.0.0.1", port_value: ports.app });
          // The service listens where its sidecar sends it, and calls out through its outbound listener.
          expect(envValue(app, "HOST"), s).to.equal("127.0.0.1");
          expect(envValue(app, "PORT"), s).to.equal(String(ports.app));
          expect(envValue(app, "SHOP_REMOTE_ADDRESS"), s).to.equal(`http://127.0.0.1:${ports.outbound}`);
          expect(app.args, s).to.deep.equal([s]);
        }
      });

      it("gives pods longer to stop than the preStop sleep plus the drain bound", function () {
        for (const deployment of [...enabledServices(r), "edge"]) {
          const pod = podOf(r, deployment);
          for (const c of pod.spec.containers) {
            const drainMs = Number(envValue(c, "DRAIN_TIMEOUT_MS") ?? 0);
            const sleep = c.lifecycle?.preStop?.sleep?.seconds ?? 0;
            expect(pod.spec.terminationGracePeriodSeconds, `${deployment}/${c.name}`).to.be.greaterThan(sleep + Math.ceil(drainMs / 1000));
          }
          const app = pod.spec.containers.find((c: Json) => c.name === "app");
          if (app) expect(envValue(app, "DRAIN_TIMEOUT_MS"), deployment).to.equal(String(r.values.shutdown.drainTimeoutMs));
        }
      });

      it("lets a service's port be reached only by the services topology.json lets call it, and the edge", function () {
        const policies = ofKind(r, "NetworkPolicy").map((p) => p.object);
        const pods = podTemplates(r);
        const enabled = enabledServices(r);
        const allowed = new Set<string>();
        const expected = new Set<string>();
        for (const callee of enabled) {
          for (const caller of enabled) if (topology.services[caller].calls.includes(callee)) expected.add(`${caller} -> ${callee}`);
          expected.add(`edge -> ${callee}`);
        }
        for (const callee of enabled) {
          const calleePod = podOf(r, callee);
          const port = instancePorts(topology, callee, 0).inbound;
          const selecting = policies.filter((p) => matchesLabels(p.spec.podSelector, calleePod.metadata.labels));
          expect(selecting.map((p) => p.metadata.name), callee).to.deep.equal([callee]);
          const [policy] = selecting;
          expect(policy.spec.policyTypes, callee).to.include("Ingress");
          for (const rule of policy.spec.ingress ?? []) {
            // A rule without peers or without ports would let everyone in.
            expect(rule.from ?? [], `${callee}: a rule with no peers admits every source`).to.not.be.empty;
            expect(rule.ports ?? [], `${callee}: a rule with no ports admits every port`).to.not.be.empty;
            if (!rulePorts(rule).includes(port)) {
              expect(rulePorts(rule).sort(), `${callee}: only the metrics ports besides`).to.deep.equal([r.values.metrics.envoyPort, r.values.metrics.appPort].sort());
              expect(rule.from, callee).to.deep.equal(r.values.metrics.scrapeFrom);
              continue;
            }
            expect(rulePorts(rule), callee).to.deep.equal([port]);
            for (const peer of rule.from) {
              expect(Object.keys(peer), `${callee}: peers are pods of this namespace`).to.deep.equal(["podSelector"]);
              const matched = pods.filter((p) => matchesLabels(peer.podSelector, p.labels));
              expect(matched.length, `${callee}: a peer selecting no rendered pod`).to.be.greaterThan(0);
              for (const p of matched) allowed.add(`${p.owner.replace(/^Deployment\//, "").replace(/^Job\//, "job:")} -> ${callee}`);
            }
          }
        }
        expect([...allowed].sort()).to.deep.equal([...expected].sort());
        // The edge: its listener from edge.allowFrom (everyone when empty), its stats from metrics.scrapeFrom.
        const edge = get(r, "NetworkPolicy", "edge");
        const listenerRule = edge.spec.ingress.find((x: Json) => rulePorts(x).includes(edgePortsK8s.listener));
        expect(rulePorts(listenerRule)).to.deep.equal([edgePortsK8s.listener]);
        expect(listenerRule.from ?? []).to.deep.equal(r.values.edge.allowFrom);
      });

      it("runs no container as root: non-root uid, read-only root filesystem, no privilege escalation, every capability dropped, RuntimeDefault seccomp", function () {
        const templates = podTemplates(r);
        expect(templates.length).to.be.greaterThan(enabledServices(r).length);
        for (const { owner, spec } of templates) {
          expect(spec.securityContext?.runAsNonRoot, owner).to.equal(true);
          expect(spec.securityContext?.runAsUser, owner).to.be.a("number").and.greaterThan(0);
          expect(spec.securityContext?.seccompProfile, owner).to.deep.equal({ type: "RuntimeDefault" });
          expect(spec.automountServiceAccountToken, owner).to.equal(false);
          expect(spec.hostNetwork ?? false, owner).to.equal(false);
          for (const c of allContainers(spec)) {
            const sc = c.securityContext ?? {};
            const what = `${owner}/${c.name}`;
            expect(sc.runAsNonRoot, what).to.equal(true);
            expect(sc.runAsUser, what).to.be.a("number").and.greaterThan(0);
            expect(sc.allowPrivilegeEscalation, what).to.equal(false);
            expect(sc.privileged ?? false, what).to.equal(false);
            expect(sc.readOnlyRootFilesystem, what).to.equal(true);
            expect(sc.capabilities, what).to.deep.equal({ drop: ["ALL"] });
            expect(sc.seccompProfile, what).to.deep.equal({ type: "RuntimeDefault" });
          }
        }
      });

      it("references only the Secrets the values document: each service's own database URL and the token key", function () {
        const schema = JSON.parse(readFileSync(join(chartDir, "values.schema.json"), "utf8")) as Json;
        const serviceSecret = schema.properties.services.additionalProperties.properties.database.properties;
        const tokenSecret = schema.properties.tokenKey.properties;
        for (const documented of [serviceSecret.secretName, serviceSecret.secretKey, tokenSecret.secretName, tokenSecret.secretKey]) expect(documented.description).to.be.a("string").and.not.empty;
        const valuesYaml = readFileSync(join(chartDir, "values.yaml"), "utf8").split("\n");
        const documentedDefaults = valuesYaml.filter((line, i) => /^\s*secretName:/.test(line) && /^\s*# -- /.test(valuesYaml[i - 1] ?? "")).length;
        expect(documentedDefaults, "a `# --` comment above every secretName in values.yaml").to.equal(serviceNames.length + 1);

        const token = { name: r.values.tokenKey.secretName, key: r.values.tokenKey.secretKey };
        const refs: Array<{ owner: string; container: string; variable: string; name: string; key: string }> = [];
        for (const { owner, spec } of podTemplates(r)) {
          expect(spec.volumes?.filter((v: Json) => v.secret || v.projected) ?? [], owner).to.deep.equal([]);
          for (const c of allContainers(spec)) {
            expect(c.envFrom ?? [], `${owner}/${c.name}`).to.deep.equal([]);
            for (const e of c.env ?? []) {
              const ref = e.valueFrom?.secretKeyRef;
              if (ref) refs.push({ owner, container: c.name, variable: e.name, name: ref.name, key: ref.key });
            }
          }
        }
        for (const ref of refs) {
          const service = serviceNames.find((s) => ref.owner === `Deployment/${s}` || ref.owner === `Job/${s}-migrate`);
          const database = service ? serviceValues(r, service).database : undefined;
          const documented =
            (ref.variable === "SHOP_TOKEN_KEY" && ref.owner.startsWith("Deployment/") && ref.name === token.name && ref.key === token.key) ||
            (service !== undefined && ref.variable === `${service.toUpperCase()}_DATABASE_URL` && ref.name === database.secretName && ref.key === database.secretKey);
          expect(documented, `${ref.owner}/${ref.container} ${ref.variable} reads Secret ${ref.name} key ${ref.key}, which no documented value names`).to.equal(true);
        }
        // And each service gets its own database URL, and no other service's.
        for (const s of enabledServices(r)) {
          for (const owner of [`Deployment/${s}`, `Job/${s}-migrate`]) {
            const urls = refs.filter((x) => x.owner === owner && x.variable.endsWith("_DATABASE_URL")).map((x) => x.variable);
            expect(urls, owner).to.deep.equal([`${s.toUpperCase()}_DATABASE_URL`]);
          }
        }
      });

      it("configures each service from values: image, STORE=postgres, BUS=nats and NATS_URL, the collector, replicas from topology.json unless set", function () {
        const image = r.values.image.digest ? `${r.values.image.repository}@${r.values.image.digest}` : `${r.values.image.repository}:${r.values.image.tag || "0.1.0"}`;
        for (const s of enabledServices(r)) {
          const v = serviceValues(r, s);
          const deployment = get(r, "Deployment", s);
          const app = container(deployment.spec.template, "app");
          expect(app.image, s).to.equal(image);
          expect(envValue(app, "STORE"), s).to.equal("postgres");
          expect(envValue(app, "BUS"), s).to.equal("nats");
          expect(envValue(app, "NATS_URL"), s).to.equal(r.values.nats.url);
          expect(envValue(app, "OTEL_EXPORTER_OTLP_ENDPOINT"), s).to.equal(r.values.opentelemetry.endpoint || undefined);
          expect(envValue(app, "OTEL_SERVICE_NAME"), s).to.equal(s);
          for (const [name, value] of Object.entries(v.env ?? {})) expect(envValue(app, name), `${s} ${name}`).to.equal(String(value));
          if (v.autoscaling.enabled) {
            expect(deployment.spec.replicas, `${s}: the HorizontalPodAutoscaler owns replicas`).to.equal(undefined);
            const hpa = get(r, "HorizontalPodAutoscaler", s);
            expect(hpa.spec.scaleTargetRef).to.deep.equal({ apiVersion: "apps/v1", kind: "Deployment", name: s });
            expect([hpa.spec.minReplicas, hpa.spec.maxReplicas], s).to.deep.equal([v.autoscaling.minReplicas, v.autoscaling.maxReplicas]);
          } else {
            expect(deployment.spec.replicas, s).to.equal(v.replicas ?? topology.services[s].replicas);
            expect(find(r, "HorizontalPodAutoscaler", s), s).to.equal(undefined);
          }
        }
      });

      it("gives every service a headless Service named after it on the sidecar port, a PodDisruptionBudget, and a pre-install/pre-upgrade migration Job", function () {
        for (const s of enabledServices(r)) {
          const labels = podOf(r, s).metadata.labels;
          const service = get(r, "Service", s);
          expect(service.spec.clusterIP, `${s}: headless, so STRICT_DNS sees every pod`).to.equal("None");
          const selected = podTemplates(r).filter((p) => matchesLabels({ matchLabels: service.spec.selector }, p.labels));
          expect(selected.map((p) => p.owner), `${s}: the Service selects its pods and no other`).to.deep.equal([`Deployment/${s}`]);
          const grpc = service.spec.ports.find((p: Json) => p.name === "grpc");
          expect([grpc.port, grpc.targetPort], s).to.deep.equal([instancePorts(topology, s, 0).inbound, "grpc"]);
          const pdbs = ofKind(r, "PodDisruptionBudget").filter((p) => matchesLabels(p.object.spec.selector, labels));
          expect(pdbs.map((p) => p.name), s).to.deep.equal([s]);
          const job = get(r, "Job", `${s}-migrate`);
          expect(job.metadata.annotations["helm.sh/hook"], s).to.equal("pre-install,pre-upgrade");
          expect(job.spec.template.spec.containers.map((c: Json) => c.args), s).to.deep.equal([["migrate", s]]);
          expect(job.spec.template.spec.restartPolicy, s).to.equal("Never");
        }
        const edgeService = get(r, "Service", "edge");
        expect(edgeService.spec.type).to.equal(r.values.edge.service.type);
        expect(edgeService.spec.ports.map((p: Json) => [p.port, p.targetPort])).to.deep.equal([[r.values.edge.service.port, "http"]]);
        expect(container(podOf(r, "edge"), "envoy").ports.find((p: Json) => p.name === "http").containerPort).to.equal(edgePortsK8s.listener);
      });

      it("lets Prometheus scrape every service and every Envoy: annotations, and the ServiceMonitor when switched on", function () {
        const { envoyPort, appPort } = r.values.metrics;
        for (const s of enabledServices(r)) {
          const pod = podOf(r, s);
          expect(pod.metadata.annotations, s).to.include({ "prometheus.io/scrape": "true", "prometheus.io/port": String(appPort), "prometheus.io/path": "/metrics" });
          expect(get(r, "Service", s).metadata.annotations, s).to.include({ "prometheus.io/scrape": "true", "prometheus.io/port": String(envoyPort), "prometheus.io/path": "/stats/prometheus" });
        }
        expect(get(r, "Service", "edge-metrics").metadata.annotations).to.include({ "prometheus.io/port": String(envoyPort), "prometheus.io/path": "/stats/prometheus" });
        expect(get(r, "Service", "edge").metadata.annotations?.["prometheus.io/scrape"], "not on the public edge Service").to.equal(undefined);
        const monitors = ofKind(r, "ServiceMonitor");
        if (!r.values.metrics.serviceMonitor.enabled) {
          expect(monitors).to.deep.equal([]);
          return;
        }
        expect(monitors.length).to.equal(1);
        const monitor = monitors[0].object;
        expect(monitor.metadata.labels).to.include(r.values.metrics.serviceMonitor.labels);
        expect(monitor.spec.endpoints.map((e: Json) => [e.port, e.path])).to.deep.equal([["app-metrics", "/metrics"], ["envoy-metrics", "/stats/prometheus"]]);
        // Every named endpoint port resolves, on each selected Service, to the container port Envoy listens on.
        const selected = ofKind(r, "Service").filter((x) => matchesLabels(monitor.spec.selector, x.object.metadata.labels));
        expect(selected.map((x) => x.name).sort()).to.deep.equal([...enabledServices(r), "edge", "edge-metrics"].sort());
        for (const { name, object } of selected) {
          const pod = podOf(r, name === "edge-metrics" ? "edge" : name);
          for (const port of object.spec.ports.filter((p: Json) => p.name.endsWith("metrics"))) {
            const declared = allContainers(pod.spec).flatMap((c) => c.ports ?? []).find((p: Json) => p.name === port.targetPort);
            expect(declared?.containerPort, `${name} ${port.name}`).to.equal(port.name === "app-metrics" ? appPort : envoyPort);
          }
        }
      });
    });
  }

  describe("values that change what is rendered", function () {
    it("leaves nothing of a disabled service, and no policy admits it", async function () {
      const r = await render({ namespace: "shop", set: ["services.orders.enabled=false"] });
      expect(r.problems).to.deep.equal([]);
      const components = new Set(r.objects.map((o) => o.object.metadata.labels?.["app.kubernetes.io/component"]));
      expect(components.has("orders") || components.has("orders-migrate")).to.equal(false);
      const catalog = get(r, "NetworkPolicy", "catalog");
      const peers = catalog.spec.ingress.flatMap((x: Json) => x.from ?? []).map((p: Json) => p.podSelector?.matchLabels?.["app.kubernetes.io/component"]);
      expect(peers.filter(Boolean).sort()).to.deep.equal(["edge", "storefront"]);
    });

    it("refuses values that name a service topology.json does not have, and a grace period that does not cover the drain", async function () {
      let message = "";
      await helmTemplate({ namespace: "shop", set: ["services.shipping.database.secretName=x", "services.shipping.database.secretKey=url"] }).catch((err: Error) => (message = err.message));
      expect(message).to.match(/services\.shipping: topology\.json has no such service/);
      message = "";
      await helmTemplate({ namespace: "shop", set: ["shutdown.terminationGracePeriodSeconds=15"] }).catch((err: Error) => (message = err.message));
      expect(message).to.match(/terminationGracePeriodSeconds \(15\) must exceed preStopSleepSeconds \+ drainTimeoutMs \(15 s\)/);
      message = "";
      await helmTemplate({ namespace: "shop", set: ["runAsUser=0"] }).catch((err: Error) => (message = err.message));
      expect(message).to.match(/runAsUser/);
    });
  });
});

function ofFolder(folder: string): string[] {
  return readdirSync(folder).filter((f) => f.endsWith(".yaml"));
}
