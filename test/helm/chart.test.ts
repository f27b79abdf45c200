// The Helm chart, offline: helm lint and helm template (pinned helm) for the
// default values and a production-like values file, every rendered object
// validated against the Kubernetes 1.30 API (tools-src/kubevalidate), and then
// what matters, derived independently of the chart from topology.json, the
// port scheme, the contracts and the Envoy generator: one sidecar per service
// running the generator's config; gRPC health probes; NetworkPolicies that
// allow exactly topology.json's calls, in (who may call a service) and out (whom
// a service may call, besides DNS, PostgreSQL, NATS and the collector); no root;
// every Secret documented, the token keys and mesh certificates each mounted in
// the one container that uses it, as a directory; cert-manager Certificates
// with the SPIFFE identities; and no rendering at all without the key Secrets.
import { expect } from "chai";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadTopology } from "@shop/platform";
import { loadServiceDescriptors } from "../../envoy/contracts.ts";
import { findEnvoy } from "../../envoy/find-envoy.ts";
import { chartFilesRoot, generateConfigs, generatedRoot } from "../../envoy/generate.ts";
import type { GeneratedConfig } from "../../envoy/generate.ts";
import { edgePorts, instancePorts } from "../../envoy/ports.ts";
import { repoRoot } from "../support/process.ts";
import { allContainers, argAfter, CERT_MANAGER_GROUP, chartDir, envValue, find, get, helmLint, helmTemplate, matchesLabels, mergeValues, ofKind, podTemplates, RELEASE, render, yamlToJson } from "./render.ts";
import type { Json, RenderOptions, Rendering } from "./render.ts";
import { ensureHelm, ensureKubevalidate, run } from "./tools.ts";

const topology = loadTopology();
const serviceNames = Object.keys(topology.services);
const edgePortsK8s = edgePorts(topology);

/** The Secret names an install must give (the chart refuses to render without them); otherwise the defaults. */
const minimalValues = "helm/shop/ci/minimal-values.yaml";

const renderings: Array<{ title: string; options: RenderOptions }> = [
  { title: "default values (with the Secret names they require, helm/shop/ci/minimal-values.yaml)", options: { namespace: "shop", valuesFiles: [minimalValues] } },
  { title: "production-like values (helm/shop/ci/production-values.yaml)", options: { namespace: "shop-prod", valuesFiles: ["helm/shop/ci/production-values.yaml"] } },
  { title: "the edge serving TLS itself (helm/shop/ci/edge-tls-values.yaml over the minimal values)", options: { namespace: "shop-tls", valuesFiles: [minimalValues, "helm/shop/ci/edge-tls-values.yaml"] } },
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

/** Where the chart mounts each Secret (the contract with the services and the Envoy generator). */
const MOUNTS = { tokenKeys: "/etc/shop/token-keys", signingKeys: "/etc/shop/signing-keys", meshTLS: "/etc/shop/mesh-tls", edgeTLS: "/etc/shop/edge-tls" };
const JWKS_FILE = `${MOUNTS.tokenKeys}/jwks.json`;
const SIGNING_KEYS_FILE = `${MOUNTS.signingKeys}/keys.json`;

/** The prefix of the Secrets cert-manager writes for the release (helm's usual fullname). */
const fullname = RELEASE.includes("shop") ? RELEASE : `${RELEASE}-shop`;

/** A component's SPIFFE ID: its ServiceAccount in the release's namespace. */
function spiffeOf(r: Rendering, component: string): string {
  return `spiffe://${r.values.meshTLS.trustDomain}/ns/${r.namespace}/sa/${component}`;
}

/** The mesh identities of a rendering: every enabled service, the edge, and the edge backend when it runs. */
function meshIdentities(r: Rendering): string[] {
  return [...enabledServices(r), "edge", ...(r.values.edge.reflection ? ["edge-backend"] : [])];
}

/** The Secret with an identity's mesh certificate ("orders", "edge", "edge-backend"), as the values name it. */
function meshSecretOf(r: Rendering, component: string): string {
  return r.values.meshTLS.certManager.enabled ? `${fullname}-${component}-mesh-tls` : r.values.meshTLS.secrets[component];
}

function edgeTLSSecretOf(r: Rendering): string | undefined {
  const tls = r.values.edge.tls;
  if (!tls.enabled) return undefined;
  return tls.certManager.enabled ? `${fullname}-edge-tls` : tls.secretName;
}

/** What each pod must mount from which Secret: volume name → Secret and the keys it projects. */
function expectedSecretVolumes(r: Rendering, deployment: string): Record<string, { secretName: string; keys: string[] }> {
  const tokenKeys = { secretName: r.values.tokenKeys.publicSetSecret, keys: ["jwks.json"] };
  const meshTLS = { secretName: meshSecretOf(r, deployment), keys: ["tls.crt", "tls.key", "ca.crt"] };
  if (deployment !== "edge") return { "token-keys": tokenKeys, "signing-keys": { secretName: r.values.tokenKeys.signingSecrets[deployment], keys: ["keys.json"] }, "mesh-tls": meshTLS };
  const out: Record<string, { secretName: string; keys: string[] }> = { "mesh-tls": meshTLS };
  if (r.values.edge.reflection) {
    Object.assign(out, {
      "token-keys": tokenKeys,
      "signing-keys": { secretName: r.values.tokenKeys.signingSecrets["edge-backend"], keys: ["keys.json"] },
      "edge-backend-mesh-tls": { secretName: meshSecretOf(r, "edge-backend"), keys: ["tls.crt", "tls.key", "ca.crt"] },
    });
  }
  const edgeTLS = edgeTLSSecretOf(r);
  if (edgeTLS) out["edge-tls"] = { secretName: edgeTLS, keys: ["tls.crt", "tls.key"] };
  return out;
}

/** Which container mounts which of them, where: [volume, mount path]. */
function expectedSecretMounts(r: Rendering, deployment: string): Record<string, Array<[string, string]>> {
  const keys: Array<[string, string]> = [["token-keys", MOUNTS.tokenKeys], ["signing-keys", MOUNTS.signingKeys]];
  if (deployment !== "edge") return { envoy: [["mesh-tls", MOUNTS.meshTLS]], app: keys };
  const envoy: Array<[string, string]> = [["mesh-tls", MOUNTS.meshTLS]];
  if (r.values.edge.tls.enabled) envoy.push(["edge-tls", MOUNTS.edgeTLS]);
  // The edge backend has an identity of its own (spiffe://.../sa/edge-backend), at the same path in its container.
  return r.values.edge.reflection ? { envoy, "edge-backend": [...keys, ["edge-backend-mesh-tls", MOUNTS.meshTLS]] } : { envoy };
}

/** Every /etc/shop/... path a text names. */
function shopPathsIn(text: string): string[] {
  return [...new Set(text.match(/\/etc\/shop\/[A-Za-z0-9._/-]+/g) ?? [])];
}

/**
 * A CA and a certificate it signed, laid out as the mounted Secrets are
 * (tls.crt, tls.key, ca.crt), for `envoy --mode validate`, which opens every
 * file a config names. Made with openssl, and only once a config names one.
 */
async function writeTLSFixture(dir: string): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const openssl = async (args: string[]) => {
    const o = await run("openssl", args, { cwd: dir });
    if (o.code !== 0) throw new Error(`openssl ${args.join(" ")}: ${o.stderr}`);
  };
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  await openssl(["req", "-x509", ...ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=shop test CA"]);
  await openssl(["req", "-new", ...ec, "-keyout", "tls.key", "-out", "tls.csr", "-subj", "/CN=shop test"]);
  writeFileSync(join(dir, "ext.cnf"), "subjectAltName=URI:spiffe://shop.local/ns/shop/sa/test,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n");
  await openssl(["x509", "-req", "-in", "tls.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", "tls.crt", "-days", "2", "-extfile", "ext.cnf"]);
}

/** The fields of cert-manager.io/v1 Certificate's spec (cert-manager v1.x), for the one check of a kind kubevalidate cannot decode. */
const CERTIFICATE_SPEC_FIELDS = [
  "subject", "literalSubject", "commonName", "duration", "renewBefore", "renewBeforePercentage", "dnsNames", "ipAddresses", "uris", "otherNames", "emailAddresses",
  "secretName", "secretTemplate", "keystores", "issuerRef", "isCA", "usages", "privateKey", "encodeUsagesInRequest", "revisionHistoryLimit", "additionalOutputFormats", "nameConstraints",
];

/** A values file as --set arguments, minus the keys named (dotted, as --set spells them). */
function asSetArguments(values: Json, omit: readonly string[] = [], prefix = ""): string[] {
  return Object.entries(values).flatMap(([k, v]) => {
    const key = `${prefix}${k}`;
    if (omit.includes(key)) return [];
    return v !== null && typeof v === "object" && !Array.isArray(v) ? asSetArguments(v, omit, `${key}.`) : [`${key}=${v}`];
  });
}

async function templateError(options: RenderOptions): Promise<string> {
  return helmTemplate(options).then(
    () => "",
    (err: Error) => err.message,
  );
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
        // The SPIFFE IDs the chart's certificates carry: its trust domain, the release's namespace.
        generated = await generateConfigs({ target: "kubernetes", namespace: options.namespace, spiffe: { trustDomain: r.values.meshTLS.trustDomain, namespace: options.namespace } });
      });

      it("passes helm lint --strict, values.schema.json included", async function () {
        const lint = await helmLint(options);
        expect(lint.ok, lint.output).to.equal(true);
      });

      it("renders only objects that decode strictly into the Kubernetes 1.30 API types and pass its rules", function () {
        expect(r.problems).to.deep.equal([]);
        // kubevalidate skipped only cert-manager's Certificates (checked field by field below).
        for (const o of r.objects.filter((x) => x.notDecoded)) expect(`${o.apiVersion} ${o.kind}`, o.name).to.equal(`${CERT_MANAGER_GROUP}/v1 Certificate`);
        for (const o of r.objects.filter((x) => x.apiVersion.startsWith(`${CERT_MANAGER_GROUP}/`))) expect(o.notDecoded, o.name).to.equal(true);
        const keys = r.objects.map((o) => `${o.apiVersion.split("/")[0]}/${o.kind}/${o.name}`);
        expect(keys.length, "nothing rendered twice").to.equal(new Set(keys).size);
        const kinds = new Set(r.objects.map((o) => `${o.apiVersion} ${o.kind}`));
        for (const expected of ["apps/v1 Deployment", "v1 Service", "v1 ConfigMap", "v1 ServiceAccount", "networking.k8s.io/v1 NetworkPolicy", "policy/v1 PodDisruptionBudget", "batch/v1 Job"]) {
          expect([...kinds]).to.include(expected);
        }
        for (const o of r.objects) expect(o.namespace, `${o.kind}/${o.name}`).to.equal(options.namespace);
      });

      it("gives every enabled service a Deployment whose pod has exactly one Envoy sidecar, running the generator's config (and its SDS files) for this namespace", function () {
        const sds = generated.filter((g) => g.kind === "sds");
        const withSds = (file: string) => [file, ...sds.map((g) => g.file)].sort();
        const generatedText = (file: string) => generated.find((g) => g.file === file)?.text;
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
          expect(Object.keys(data).sort(), s).to.deep.equal(withSds(`sidecar-${s}.yaml`));
          expect(data[`sidecar-${s}.yaml`], `${s}: the ConfigMap differs from generateConfigs({ target: "kubernetes", namespace: "${options.namespace}" })`).to.equal(expected?.text);
          for (const g of sds) expect(data[g.file], `${s}: ${g.file}`).to.equal(g.text);
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
        // edge-tls.yaml, the generator's same edge serving TLS from /etc/shop/edge-tls/, when edge.tls is on.
        const edgeFile = r.values.edge.tls.enabled ? "edge-tls.yaml" : "edge.yaml";
        expect(argAfter(edgeEnvoy, "-c")).to.equal(`/etc/envoy/${edgeFile}`);
        const edgeData = mountedConfigMap(r, edge, edgeEnvoy, "/etc/envoy");
        expect(Object.keys(edgeData).sort()).to.deep.equal(withSds(edgeFile));
        expect(edgeData[edgeFile]).to.equal(generatedText(edgeFile));
        for (const g of sds) expect(edgeData[g.file], `edge: ${g.file}`).to.equal(g.text);
      });

      it("adds to each generated config only the metrics and probe listeners, reading Envoy's admin, the service's /metrics and its Health/Check on loopback", async function () {
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
            expectedListeners.push(["app_metrics", r.values.metrics.appPort], ["app_health", r.values.metrics.probePort]);
            expectedClusters.push(["app_metrics", { address: "127.0.0.1", port_value: ports.app }], ["app_health", { address: "127.0.0.1", port_value: ports.app }]);
            // The probe listener's cluster speaks HTTP/2 (gRPC) to the service.
            const health = extra.static_resources.clusters.find((c: Json) => c.name === "app_health");
            expect(health.typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"].explicit_http_config, deployment).to.have.property("http2_protocol_options");
          }
          expect(listeners, deployment).to.deep.equal(expectedListeners);
          expect(clusters, deployment).to.deep.equal(expectedClusters);
          const paths = extra.static_resources.listeners.flatMap((l: Json) => l.filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes.map((x: Json) => x.match.path));
          expect(paths.sort(), deployment).to.deep.equal((ports.app !== undefined ? ["/metrics", "/ready", "/stats/prometheus", "/grpc.health.v1.Health/Check"] : ["/ready", "/stats/prometheus"]).sort());
        }
      });

      it("starts every Envoy with a command line `envoy --mode validate` accepts (its ConfigMap, SDS files and certificates where it mounts them, plus the chart's listeners)", async function () {
        const envoyBin = findEnvoy();
        const scratch = mkdtempSync(join(tmpdir(), "shop-helm-envoy-"));
        try {
          // Each pod's /etc/envoy (the whole ConfigMap: config and SDS files) in a folder of its own, and
          // certificates wherever a file names the mounted ones (validation opens every file named).
          const pods = [...enabledServices(r), "edge"].map((deployment) => {
            const pod = podOf(r, deployment);
            const envoy = container(pod, "envoy");
            const file = (argAfter(envoy, "-c") ?? "").split("/").pop() ?? "";
            return { deployment, envoy, file, data: mountedConfigMap(r, pod, envoy, "/etc/envoy") as Record<string, string> };
          });
          const texts = pods.flatMap((p) => Object.values(p.data));
          const tlsDirs = [MOUNTS.meshTLS, MOUNTS.edgeTLS].filter((dir) => texts.some((t) => t.includes(dir)));
          const fixtureOf = (dir: string) => join(scratch, "certs", dir.split("/").pop() ?? "");
          for (const dir of tlsDirs) await writeTLSFixture(fixtureOf(dir));
          const checks = pods.map(async ({ deployment, envoy, file, data }) => {
            const etcEnvoy = join(scratch, deployment, "etc-envoy");
            mkdirSync(etcEnvoy, { recursive: true });
            const relocate = (text: string) => tlsDirs.reduce((t, dir) => t.replaceAll(dir, fixtureOf(dir)), text.replaceAll("/etc/envoy", etcEnvoy));
            for (const [name, text] of Object.entries(data)) writeFileSync(join(etcEnvoy, name), relocate(text));
            const args = [...envoy.args];
            args[args.indexOf("-c") + 1] = join(etcEnvoy, file);
            const v = await run(envoyBin, ["--mode", "validate", ...args], { timeoutMs: 60_000 });
            return { deployment, ok: v.code === 0, output: `${v.stdout}${v.stderr}`.trim() };
          });
          for (const v of await Promise.all(checks)) expect(v.ok, `${v.deployment}: ${v.output}`).to.equal(true);
        } finally {
          rmSync(scratch, { recursive: true, force: true });
        }
      });

      it("probes every service with native gRPC probes on grpc.health.v1, through the sidecar's cleartext probe listener (the inbound one takes mTLS only)", async function () {
        for (const s of enabledServices(r)) {
          const app = container(podOf(r, s), "app");
          const ports = instancePorts(topology, s, 0);
          const probePort = r.values.metrics.probePort;
          expect(app.readinessProbe?.grpc, s).to.deep.equal({ port: probePort, service: healthNames.get(s) });
          expect(app.livenessProbe?.grpc, s).to.deep.equal({ port: probePort });
          expect(app.startupProbe?.grpc, s).to.deep.equal({ port: probePort });
          // The sidecar's listener on that port sends grpc.health.v1.Health/Check, and nothing else, to the service on loopback.
          const envoy = container(podOf(r, s), "envoy");
          const extra = await yamlToJson(argAfter(envoy, "--config-yaml") ?? "");
          const listener = extra.static_resources.listeners.find((l: Json) => l.address.socket_address.port_value === probePort);
          expect(listener.address.socket_address.address, s).to.equal("0.0.0.0");
          const routes = listener.filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes;
          expect(routes.map((x: Json) => x.match), s).to.deep.equal([{ path: "/grpc.health.v1.Health/Check" }]);
          const cluster = extra.static_resources.clusters.find((c: Json) => c.name === routes[0].route.cluster);
          expect(cluster.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address, s).to.deep.equal({ address: "127.0.0.1", port_value: ports.app });
          expect(envoy.ports.map((p: Json) => p.containerPort), s).to.include(probePort);
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

      it("references only the Secrets the values document: each service's own database URL, the token keys, the mesh certificates", function () {
        const schema = JSON.parse(readFileSync(join(chartDir, "values.schema.json"), "utf8")) as Json;
        const serviceSecret = schema.properties.services.additionalProperties.properties.database.properties;
        const tokenKeys = schema.properties.tokenKeys.properties;
        const meshTLS = schema.properties.meshTLS.properties;
        for (const documented of [serviceSecret.secretName, serviceSecret.secretKey, tokenKeys.publicSetSecret, tokenKeys.signingSecrets, meshTLS.secrets, schema.properties.edge.properties.tls.properties.secretName]) {
          expect(documented.description).to.be.a("string").and.not.empty;
        }
        // values.yaml: a `# --` comment (possibly over several lines) above every value naming a Secret.
        const valuesYaml = readFileSync(join(chartDir, "values.yaml"), "utf8").split("\n");
        const secretValues = valuesYaml.map((line, i) => ({ line, i })).filter(({ line }) => /^\s*(secretName|publicSetSecret|signingSecrets|secrets):/.test(line));
        expect(secretValues.length, "the database Secrets, the token keys, the mesh and edge certificates").to.equal(serviceNames.length + 4);
        for (const { line, i } of secretValues) {
          let j = i - 1;
          while (j > 0 && /^\s*# (?!--)/.test(valuesYaml[j])) j--;
          expect(valuesYaml[j], `a \`# --\` comment above ${line.trim()}`).to.match(/^\s*# -- /);
        }

        const refs: Array<{ owner: string; container: string; variable: string; name: string; key: string }> = [];
        for (const { owner, spec } of podTemplates(r)) {
          expect(spec.volumes?.filter((v: Json) => v.projected) ?? [], owner).to.deep.equal([]);
          // Jobs mount no Secret; Deployments only those the next test names.
          if (owner.startsWith("Job/")) expect(spec.volumes?.filter((v: Json) => v.secret) ?? [], owner).to.deep.equal([]);
          for (const c of allContainers(spec)) {
            expect(c.envFrom ?? [], `${owner}/${c.name}`).to.deep.equal([]);
            expect(envValue(c, "SHOP_TOKEN_KEY") ?? (c.env ?? []).find((e: Json) => e.name === "SHOP_TOKEN_KEY"), `${owner}/${c.name}: the HS256 key is gone`).to.equal(undefined);
            for (const e of c.env ?? []) {
              const ref = e.valueFrom?.secretKeyRef;
              if (ref) refs.push({ owner, container: c.name, variable: e.name, name: ref.name, key: ref.key });
            }
          }
        }
        for (const ref of refs) {
          const service = serviceNames.find((s) => ref.owner === `Deployment/${s}` || ref.owner === `Job/${s}-migrate`);
          const database = service ? serviceValues(r, service).database : undefined;
          const documented = service !== undefined && ref.variable === `${service.toUpperCase()}_DATABASE_URL` && ref.name === database.secretName && ref.key === database.secretKey;
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

      it("mounts the public key set in every shop process, each signer's private keys in its own container only, each mesh certificate in its pod's Envoy: whole Secrets as directories, read-only", function () {
        for (const deployment of [...enabledServices(r), "edge"]) {
          const pod = podOf(r, deployment);
          const secretVolumes = Object.fromEntries(
            (pod.spec.volumes ?? []).filter((v: Json) => v.secret).map((v: Json) => [v.name, { secretName: v.secret.secretName, keys: (v.secret.items ?? []).map((x: Json) => x.key) }]),
          );
          expect(secretVolumes, deployment).to.deep.equal(expectedSecretVolumes(r, deployment));
          for (const v of (pod.spec.volumes ?? []).filter((x: Json) => x.secret)) {
            // Readable by the containers' group (fsGroup), by nobody else; every key at its own name.
            expect(v.secret.defaultMode, `${deployment} ${v.name}`).to.equal(0o440);
            expect(v.secret.optional ?? false, `${deployment} ${v.name}: a missing Secret keeps the pod from starting`).to.equal(false);
            for (const item of v.secret.items) expect(item.path, `${deployment} ${v.name}`).to.equal(item.key);
          }
          const expectedMounts = expectedSecretMounts(r, deployment);
          for (const c of allContainers(pod.spec)) {
            const mounts = (c.volumeMounts ?? []).filter((m: Json) => secretVolumes[m.name]);
            expect(mounts.map((m: Json) => [m.name, m.mountPath]), `${deployment}/${c.name}`).to.deep.equal(expectedMounts[c.name] ?? []);
            for (const m of mounts) {
              // subPath mounts never see a changed Secret: rotation needs the directory.
              expect(m.subPath ?? m.subPathExpr, `${deployment}/${c.name} ${m.mountPath}`).to.equal(undefined);
              expect(m.readOnly, `${deployment}/${c.name} ${m.mountPath}`).to.equal(true);
            }
            // The processes find the files where the mounts put them.
            const mounted = (file: string) => mounts.some((m: Json) => file.startsWith(`${m.mountPath}/`) && secretVolumes[m.name].keys.includes(file.slice(m.mountPath.length + 1)));
            if (c.name === "envoy") {
              expect([envValue(c, "SHOP_JWKS_FILE"), envValue(c, "SHOP_SIGNING_KEYS_FILE")], `${deployment}: Envoy signs nothing`).to.deep.equal([undefined, undefined]);
            } else {
              expect([envValue(c, "SHOP_JWKS_FILE"), envValue(c, "SHOP_SIGNING_KEYS_FILE")], `${deployment}/${c.name}`).to.deep.equal([JWKS_FILE, SIGNING_KEYS_FILE]);
              expect(mounted(JWKS_FILE) && mounted(SIGNING_KEYS_FILE), `${deployment}/${c.name}`).to.equal(true);
            }
          }
        }
      });

      it("runs the edge backend as the edge-backend identity, asking every pod it finds through the Services' DNS names in this namespace", function () {
        if (!r.values.edge.reflection) return;
        const backend = container(podOf(r, "edge"), "edge-backend");
        expect(backend.args).to.deep.equal(["edge-backend"]);
        expect(["HOST", "PORT"].map((v) => envValue(backend, v))).to.deep.equal(["127.0.0.1", String(edgePortsK8s.reflection)]);
        expect(["MESH_DISCOVERY", "MESH_NAMESPACE", "MESH_TLS_DIR", "MESH_TRUST_DOMAIN", "MESH_SPIFFE_NAMESPACE"].map((v) => envValue(backend, v))).to.deep.equal([
          "dns",
          r.namespace,
          MOUNTS.meshTLS,
          r.values.meshTLS.trustDomain,
          r.namespace,
        ]);
      });

      it("gives every Envoy only /etc/shop paths its pod mounts for it (the generator's certificate paths and the chart's mounts agree)", function () {
        for (const deployment of [...enabledServices(r), "edge"]) {
          const pod = podOf(r, deployment);
          const envoy = container(pod, "envoy");
          const file = (argAfter(envoy, "-c") ?? "").split("/").pop() ?? "";
          const text = `${mountedConfigMap(r, pod, envoy, "/etc/envoy")[file]}\n${envoy.args.join("\n")}`;
          const volumes = new Map<string, Json>((pod.spec.volumes ?? []).map((v: Json) => [v.name, v]));
          for (const path of shopPathsIn(text)) {
            const mount = (envoy.volumeMounts ?? []).find((m: Json) => path === m.mountPath || path.startsWith(`${m.mountPath}/`));
            expect(mount, `${deployment}: Envoy's config reads ${path}, which nothing mounts in its container`).to.not.equal(undefined);
            const rest = path.slice(mount.mountPath.length + 1);
            if (rest) expect(volumes.get(mount.name)?.secret?.items.map((x: Json) => x.path), `${deployment}: ${path}`).to.include(rest);
          }
        }
      });

      it("renders a cert-manager Certificate per mesh identity when meshTLS.certManager is on (its SPIFFE ID, client and server auth, into the Secret its container mounts), and the edge's public one with edge.tls.certManager", function () {
        const certificates = ofKind(r, "Certificate").map((o) => o.object);
        const mesh = certificates.filter((c) => c.spec.uris);
        // The edge's public certificate, with edge.tls.certManager: its DNS names, server auth, into the Secret the edge's Envoy mounts.
        const publicCerts = certificates.filter((c) => !c.spec.uris);
        const tls = r.values.edge.tls;
        expect(publicCerts.length).to.equal(tls.enabled && tls.certManager.enabled ? 1 : 0);
        for (const cert of publicCerts) {
          expect(cert.apiVersion).to.equal("cert-manager.io/v1");
          expect(CERTIFICATE_SPEC_FIELDS).to.include.members(Object.keys(cert.spec));
          expect(cert.spec.secretName).to.equal(edgeTLSSecretOf(r));
          expect(cert.spec.dnsNames).to.deep.equal(tls.certManager.dnsNames);
          expect(cert.spec.usages).to.include("server auth");
          expect(cert.spec.issuerRef).to.deep.equal(tls.certManager.issuerRef);
          expect(podOf(r, "edge").spec.volumes.find((v: Json) => v.name === "edge-tls").secret.secretName).to.equal(cert.spec.secretName);
        }
        if (!r.values.meshTLS.certManager.enabled) {
          expect(mesh).to.deep.equal([]);
          return;
        }
        const components = meshIdentities(r);
        expect(mesh.map((c) => c.spec.secretName).sort()).to.deep.equal(components.map((c) => meshSecretOf(r, c)).sort());
        for (const component of components) {
          const cert = mesh.find((c) => c.spec.secretName === meshSecretOf(r, component)) as Json;
          expect(cert.apiVersion, component).to.equal("cert-manager.io/v1");
          expect(cert.kind, component).to.equal("Certificate");
          expect(cert.metadata.namespace, component).to.equal(r.namespace);
          expect(CERTIFICATE_SPEC_FIELDS, `${component}: spec fields a v1 Certificate has`).to.include.members(Object.keys(cert.spec));
          // One identity, the ServiceAccount the pod runs as.
          expect(cert.spec.uris, component).to.deep.equal([spiffeOf(r, component)]);
          // A service's and the edge's: the pod's ServiceAccount (the backend shares the edge's pod, not its identity).
          if (component !== "edge-backend") expect(cert.spec.uris[0].endsWith(`/sa/${podOf(r, component).spec.serviceAccountName}`), component).to.equal(true);
          expect(cert.spec.dnsNames ?? [], component).to.deep.equal([]);
          expect(cert.spec.commonName, component).to.equal(undefined);
          expect(cert.spec.usages, component).to.include.members(["client auth", "server auth"]);
          expect(cert.spec.issuerRef, component).to.deep.equal(r.values.meshTLS.certManager.issuerRef);
          expect(cert.spec.privateKey.rotationPolicy, component).to.equal("Always");
          expect([cert.spec.duration, cert.spec.renewBefore], component).to.deep.equal([r.values.meshTLS.certManager.duration, r.values.meshTLS.certManager.renewBefore]);
          const volume = component === "edge-backend" ? podOf(r, "edge").spec.volumes.find((v: Json) => v.name === "edge-backend-mesh-tls") : podOf(r, component).spec.volumes.find((v: Json) => v.name === "mesh-tls");
          expect(volume.secret.secretName, component).to.equal(cert.spec.secretName);
        }
      });

      it("gives every migration Job a policy of its own, created a hook step before it: no ingress, egress to DNS and PostgreSQL only", function () {
        const e = r.values.networkPolicy.egress;
        for (const s of enabledServices(r)) {
          const job = get(r, "Job", `${s}-migrate`);
          const policy = get(r, "NetworkPolicy", `${s}-migrate`);
          expect(Number(policy.metadata.annotations["helm.sh/hook-weight"]), s).to.be.lessThan(Number(job.metadata.annotations["helm.sh/hook-weight"]));
          expect(policy.metadata.annotations["helm.sh/hook"], s).to.equal(job.metadata.annotations["helm.sh/hook"]);
          expect(matchesLabels(policy.spec.podSelector, job.spec.template.metadata.labels), s).to.equal(true);
          expect(policy.spec.policyTypes, s).to.deep.equal(["Ingress", "Egress"]);
          expect(policy.spec.ingress, s).to.deep.equal([]);
          const reached = policy.spec.egress.map((x: Json) => x.ports.map((p: Json) => `${p.protocol}/${p.port}`).sort().join());
          expect(reached, s).to.deep.equal([`TCP/${e.dns.port},UDP/${e.dns.port}`, `TCP/${e.postgres.port}`]);
        }
      });

      it("limits every service's egress to DNS, the services topology.json lets it call (its sidecar's upstreams), PostgreSQL, NATS and the collector; the edge's to DNS, the services and the collector", function () {
        const e = r.values.networkPolicy.egress;
        expect(e.enabled).to.equal(true);
        const pods = podTemplates(r);
        const enabled = enabledServices(r);
        const inbound = (s: string) => instancePorts(topology, s, 0).inbound;
        /** What a policy's egress reaches: services of the release (by their pods), and the named outside destinations. */
        const reachOf = (name: string) => {
          const policy = get(r, "NetworkPolicy", name);
          expect(policy.spec.policyTypes, name).to.include("Egress");
          const services = new Set<string>();
          const outside = new Set<string>();
          for (const rule of policy.spec.egress ?? []) {
            expect(rule.ports ?? [], `${name}: an egress rule with no ports reaches every port`).to.not.be.empty;
            const ports = rule.ports.map((p: Json) => `${p.protocol}/${p.port}`).sort();
            const to = rule.to ?? [];
            if (ports.join() === [`TCP/${e.dns.port}`, `UDP/${e.dns.port}`].join()) {
              expect(to, `${name}: DNS`).to.deep.equal(e.dns.to);
              outside.add("dns");
              continue;
            }
            if (to.length > 0 && to.every((peer: Json) => Object.keys(peer).join() === "podSelector")) {
              for (const peer of to) {
                const matched = pods.filter((p) => matchesLabels(peer.podSelector, p.labels)).map((p) => p.owner);
                expect(matched.length, `${name}: an egress peer selecting no rendered pod`).to.equal(1);
                const callee = matched[0].replace(/^Deployment\//, "");
                expect(enabled, `${name}: egress to ${matched[0]}`).to.include(callee);
                expect(ports, `${name} -> ${callee}: its sidecar port only`).to.deep.equal([`TCP/${inbound(callee)}`]);
                services.add(callee);
              }
              continue;
            }
            expect(ports.length, `${name}: ${ports}`).to.equal(1);
            const port = rule.ports[0].port;
            const which = (["postgres", "nats", "opentelemetry"] as const).find((k) => e[k].port === port);
            expect(which, `${name}: egress to port ${port}, which is not PostgreSQL's, NATS's or the collector's`).to.not.equal(undefined);
            expect(ports, `${name} ${which}`).to.deep.equal([`TCP/${port}`]);
            expect(to, `${name} ${which}`).to.deep.equal(e[which as string].to);
            outside.add(which as string);
          }
          return { services, outside };
        };
        const withCollector = (list: string[]) => (r.values.opentelemetry.endpoint ? [...list, "opentelemetry"] : list).sort();
        for (const s of enabled) {
          const { services, outside } = reachOf(s);
          expect([...services].sort(), `${s}: the services topology.json lets it call`).to.deep.equal(topology.services[s].calls.filter((c) => enabled.includes(c)).sort());
          expect([...outside].sort(), s).to.deep.equal(withCollector(["dns", "postgres", "nats"]));
          // Independently: every upstream of the generated sidecar config is reachable, on its port.
          const config = generated.find((g) => g.file === `sidecar-${s}.yaml`)?.config as Json;
          for (const cluster of config.static_resources.clusters.filter((c: Json) => c.type === "STRICT_DNS")) {
            for (const ep of cluster.load_assignment.endpoints.flatMap((x: Json) => x.lb_endpoints)) {
              const { address, port_value } = ep.endpoint.address.socket_address;
              const [callee, namespace] = address.split(".");
              expect(namespace, `${s}: cluster ${cluster.name}`).to.equal(r.namespace);
              expect([...services], `${s}: its sidecar's cluster ${cluster.name}`).to.include(callee);
              expect(port_value, `${s}: cluster ${cluster.name}`).to.equal(inbound(callee));
            }
          }
        }
        // orders calls catalog and nothing else (topology.json): not users, not payments.
        expect(topology.services.orders.calls).to.deep.equal(["catalog"]);
        if (enabled.includes("orders")) {
          const orders = reachOf("orders").services;
          expect([...orders]).to.include("catalog").and.not.include("users").and.not.include("payments");
        }
        // The edge: every service (its config has a cluster per service, and the edge backend asks every instance), DNS, the collector.
        const edge = reachOf("edge");
        expect([...edge.services].sort()).to.deep.equal([...enabled].sort());
        expect([...edge.outside].sort()).to.deep.equal(withCollector(["dns"]));
        const edgeConfig = generated.find((g) => g.file === "edge.yaml")?.config as Json;
        for (const cluster of edgeConfig.static_resources.clusters.filter((c: Json) => c.type === "STRICT_DNS")) {
          const [callee] = cluster.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address.split(".");
          if (enabled.includes(callee)) expect([...edge.services], `edge: cluster ${cluster.name}`).to.include(callee);
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
    const withSecrets = (set: string[] = []): RenderOptions => ({ namespace: "shop", valuesFiles: [minimalValues], set });

    it("leaves nothing of a disabled service, and no policy admits it or lets anyone reach it", async function () {
      const r = await render(withSecrets(["services.orders.enabled=false"]));
      expect(r.problems).to.deep.equal([]);
      const components = new Set(r.objects.map((o) => o.object.metadata.labels?.["app.kubernetes.io/component"]));
      expect(components.has("orders") || components.has("orders-migrate")).to.equal(false);
      const catalog = get(r, "NetworkPolicy", "catalog");
      const peers = catalog.spec.ingress.flatMap((x: Json) => x.from ?? []).map((p: Json) => p.podSelector?.matchLabels?.["app.kubernetes.io/component"]);
      expect(peers.filter(Boolean).sort()).to.deep.equal(["edge", "storefront"]);
      for (const name of ["storefront", "edge"]) {
        const reached = get(r, "NetworkPolicy", name).spec.egress.flatMap((x: Json) => x.to ?? []).map((p: Json) => p.podSelector?.matchLabels?.["app.kubernetes.io/component"]);
        expect(reached.filter(Boolean), name).to.not.include("orders");
      }
    });

    it("restricts ingress only with networkPolicy.egress.enabled=false", async function () {
      const r = await render(withSecrets(["networkPolicy.egress.enabled=false"]));
      expect(r.problems).to.deep.equal([]);
      for (const policy of ofKind(r, "NetworkPolicy").map((o) => o.object)) {
        expect(policy.spec.policyTypes, policy.metadata.name).to.deep.equal(["Ingress"]);
        expect(policy.spec.egress, policy.metadata.name).to.equal(undefined);
      }
    });

    it("mounts the edge's public certificate at /etc/shop/edge-tls/ with edge.tls: a Secret of the user's, or a cert-manager Certificate for edge.tls.certManager.dnsNames", async function () {
      const own = await render(withSecrets(["edge.tls.enabled=true", "edge.tls.secretName=shop-edge-public-tls"]));
      expect(own.problems).to.deep.equal([]);
      expect(ofKind(own, "Certificate")).to.deep.equal([]);
      const volumes = podOf(own, "edge").spec.volumes.filter((v: Json) => v.name === "edge-tls");
      expect(volumes.map((v: Json) => [v.secret.secretName, v.secret.items.map((x: Json) => x.key)])).to.deep.equal([["shop-edge-public-tls", ["tls.crt", "tls.key"]]]);
      const mounts = container(podOf(own, "edge"), "envoy").volumeMounts.filter((m: Json) => m.name === "edge-tls");
      expect(mounts).to.deep.equal([{ name: "edge-tls", mountPath: MOUNTS.edgeTLS, readOnly: true }]);
      // Only the edge's Envoy holds it.
      for (const { owner, spec } of podTemplates(own)) {
        for (const c of allContainers(spec)) if (owner !== "Deployment/edge" || c.name !== "envoy") expect((c.volumeMounts ?? []).map((m: Json) => m.name), `${owner}/${c.name}`).to.not.include("edge-tls");
      }

      const managed = await render(
        withSecrets(["edge.tls.enabled=true", "edge.tls.certManager.enabled=true", "edge.tls.certManager.issuerRef.name=letsencrypt", "edge.tls.certManager.dnsNames={shop.example.com,api.shop.example.com}"]),
      );
      expect(managed.problems).to.deep.equal([]);
      const certificates = ofKind(managed, "Certificate").map((o) => o.object);
      expect(certificates.length, "the edge's public one only (meshTLS.certManager is off)").to.equal(1);
      const [cert] = certificates;
      expect(cert.apiVersion).to.equal("cert-manager.io/v1");
      expect(CERTIFICATE_SPEC_FIELDS).to.include.members(Object.keys(cert.spec));
      expect(cert.spec.secretName).to.equal(`${fullname}-edge-tls`);
      expect(cert.spec.dnsNames).to.deep.equal(["shop.example.com", "api.shop.example.com"]);
      expect(cert.spec.uris).to.equal(undefined);
      expect(cert.spec.usages).to.include("server auth");
      expect(cert.spec.issuerRef).to.deep.equal({ name: "letsencrypt", kind: "ClusterIssuer", group: "cert-manager.io" });
      expect(podOf(managed, "edge").spec.volumes.find((v: Json) => v.name === "edge-tls").secret.secretName).to.equal(cert.spec.secretName);
    });

    it("refuses to render without the key Secrets and mesh certificates, and says what to create", async function () {
      const minimal = await yamlToJson(readFileSync(join(repoRoot, minimalValues), "utf8"));
      const without = (...keys: string[]) => templateError({ namespace: "shop", set: asSetArguments(minimal, keys) });
      // The defaults alone: the public key set is asked for first, with the way to make it.
      const none = await templateError({ namespace: "shop" });
      expect(none).to.include("tokenKeys.publicSetSecret is required").and.include("jwks.json").and.include("`node runner/keys.ts --out <dir>`").and.include("<dir>/jwks.json");
      expect(await without("tokenKeys.publicSetSecret")).to.include("tokenKeys.publicSetSecret is required");
      const signing = await without("tokenKeys.signingSecrets.orders");
      expect(signing).to.include("tokenKeys.signingSecrets.orders is required").and.include("keys.json").and.include("`node runner/keys.ts --out <dir>`").and.include("<dir>/signing/orders.json");
      expect(await without("tokenKeys.signingSecrets.edge-backend")).to.include("tokenKeys.signingSecrets.edge-backend is required").and.include("<dir>/signing/edge-backend.json");
      // Without the edge backend, the edge pod needs no token keys.
      expect(await templateError({ namespace: "shop", set: [...asSetArguments(minimal, ["tokenKeys.signingSecrets.edge-backend", "meshTLS.secrets.edge-backend"]), "edge.reflection=false"] })).to.equal("");
      // A disabled service needs none of its Secrets.
      expect(await templateError({ namespace: "shop", set: [...asSetArguments(minimal, ["tokenKeys.signingSecrets.payments", "meshTLS.secrets.payments"]), "services.payments.enabled=false"] })).to.equal("");
      const mesh = await without("meshTLS.secrets.edge");
      expect(mesh).to.include("meshTLS.secrets.edge is required (or set meshTLS.certManager.enabled)").and.include("tls.crt, tls.key and ca.crt").and.include("spiffe://shop.local/ns/shop/sa/edge");
      expect(await without("meshTLS.secrets.edge-backend")).to.include("meshTLS.secrets.edge-backend is required").and.include("spiffe://shop.local/ns/shop/sa/edge-backend");
      expect(await without("meshTLS")).to.include("meshTLS.secrets.catalog is required");
      // cert-manager needs an issuer, and then no mesh Secret names.
      expect(await templateError({ namespace: "shop", set: [...asSetArguments(minimal, ["meshTLS"]), "meshTLS.certManager.enabled=true"] })).to.include("meshTLS.certManager.issuerRef.name is required");
      expect(await templateError({ namespace: "shop", set: [...asSetArguments(minimal, ["meshTLS"]), "meshTLS.certManager.enabled=true", "meshTLS.certManager.issuerRef.name=mesh-ca"] })).to.equal("");
      // The edge's public TLS: a Secret or a Certificate with names.
      expect(await templateError(withSecrets(["edge.tls.enabled=true"]))).to.include("edge.tls.secretName is required");
      expect(await templateError(withSecrets(["edge.tls.enabled=true", "edge.tls.certManager.enabled=true", "edge.tls.certManager.issuerRef.name=acme"]))).to.include("edge.tls.certManager.dnsNames is required");
      // A misspelt signer or component is named, not ignored.
      expect(await templateError(withSecrets(["tokenKeys.signingSecrets.order=x"]))).to.include("tokenKeys.signingSecrets.order: no such signer");
      expect(await templateError(withSecrets(["meshTLS.secrets.edges=x"]))).to.include("meshTLS.secrets.edges: no such identity");
    });

    it("refuses values that name a service topology.json does not have, and a grace period that does not cover the drain", async function () {
      let message = await templateError(withSecrets(["services.shipping.database.secretName=x", "services.shipping.database.secretKey=url"]));
      expect(message).to.match(/services\.shipping: topology\.json has no such service/);
      message = await templateError(withSecrets(["shutdown.terminationGracePeriodSeconds=15"]));
      expect(message).to.match(/terminationGracePeriodSeconds \(15\) must exceed preStopSleepSeconds \+ drainTimeoutMs \(15 s\)/);
      message = await templateError(withSecrets(["runAsUser=0"]));
      expect(message).to.match(/runAsUser/);
    });
  });
});

function ofFolder(folder: string): string[] {
  return readdirSync(folder).filter((f) => f.endsWith(".yaml"));
}
