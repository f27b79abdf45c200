// The chart as the tests see it: `helm lint` and `helm template` for a set of
// values, every rendered object checked by kubevalidate (Kubernetes 1.30 API,
// offline), and the values the rendering used, merged as helm merges them.
// cert-manager.io objects (a CRD neither k8s.io/api nor kubevalidate carries)
// are the one exception: parsed, not decoded strictly, marked `notDecoded`,
// and their fields asserted by chart.test.ts instead.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { repoRoot } from "../support/process.ts";
import { helmPath, kubevalidatePath, run } from "./tools.ts";

export const chartDir = join(repoRoot, "helm/shop");
/** The oldest Kubernetes the chart targets (Chart.yaml kubeVersion), and the API kubevalidate checks. */
export const KUBE_VERSION = "1.30.0";
export const RELEASE = "shop";

// Rendered objects and values are plain JSON data; the assertions name the parts they read.
export type Json = Record<string, any>;

export interface RenderedObject {
  apiVersion: string;
  kind: string;
  namespace?: string;
  name: string;
  object: Json;
  problems?: string[];
  /** A cert-manager.io object: parsed only; the tests check its fields. */
  notDecoded?: true;
}

export interface Rendering {
  namespace: string;
  objects: RenderedObject[];
  /** values.yaml under the values files, as helm merges them (maps merge, lists and scalars replace). */
  values: Json;
  /** What kubevalidate said about objects it rejected; empty when all are valid. */
  problems: string[];
}

export interface RenderOptions {
  namespace: string;
  /** Values files, relative to the repository. */
  valuesFiles?: readonly string[];
  /** --set arguments ("services.orders.enabled=false"). */
  set?: readonly string[];
}

function helmArgs(options: RenderOptions): string[] {
  return [
    "--namespace",
    options.namespace,
    "--kube-version",
    KUBE_VERSION,
    ...(options.valuesFiles ?? []).flatMap((f) => ["--values", join(repoRoot, f)]),
    ...(options.set ?? []).flatMap((s) => ["--set", s]),
  ];
}

export async function helmLint(options: RenderOptions): Promise<{ ok: boolean; output: string }> {
  const r = await run(helmPath, ["lint", "--strict", chartDir, ...helmArgs(options)]);
  return { ok: r.code === 0, output: `${r.stdout}${r.stderr}` };
}

/** `helm template`; rejects with helm's message when it refuses to render. */
export async function helmTemplate(options: RenderOptions): Promise<string> {
  const r = await run(helmPath, ["template", RELEASE, chartDir, ...helmArgs(options)]);
  if (r.code !== 0) throw new Error(r.stderr.trim() || `helm template exited ${r.code}`);
  return r.stdout;
}

export async function yamlToJson(yaml: string): Promise<Json> {
  const r = await run(kubevalidatePath, ["--yaml-to-json"], { input: yaml });
  if (r.code !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout) as Json;
}

function isMap(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Helm's coalescing of values files: maps merge key by key, anything else replaces. */
export function mergeValues(base: Json, over: Json): Json {
  const out: Json = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = isMap(v) && isMap(out[k]) ? mergeValues(out[k], v) : v;
  return out;
}

/** The API group whose kinds kubevalidate cannot decode (cert-manager's CRDs): chart.test.ts asserts their fields. */
export const CERT_MANAGER_GROUP = "cert-manager.io";
const certManagerDocument = new RegExp(`^apiVersion:\\s*["']?${CERT_MANAGER_GROUP.replace(/\./g, "\\.")}/`, "m");

/** helm template's stream split into its documents, the cert-manager.io ones apart. */
function splitManifest(manifest: string): { kubernetes: string; certManager: string[] } {
  const documents = manifest.split(/^---[ \t]*$/m);
  const certManager = documents.filter((d) => certManagerDocument.test(d));
  return { kubernetes: documents.filter((d) => !certManagerDocument.test(d)).join("---\n"), certManager };
}

async function parseUndecoded(document: string): Promise<RenderedObject> {
  const object = await yamlToJson(document);
  return { apiVersion: object.apiVersion, kind: object.kind, namespace: object.metadata?.namespace, name: object.metadata?.name, object, notDecoded: true };
}

export async function render(options: RenderOptions): Promise<Rendering> {
  const manifest = await helmTemplate(options);
  const { kubernetes, certManager } = splitManifest(manifest);
  const validated = await run(kubevalidatePath, ["--json"], { input: kubernetes });
  if (validated.stdout.trim() === "") throw new Error(`kubevalidate printed nothing:\n${validated.stderr}`);
  const objects = [...(JSON.parse(validated.stdout) as RenderedObject[]), ...(await Promise.all(certManager.map(parseUndecoded)))];
  let values = await yamlToJson(readFileSync(join(chartDir, "values.yaml"), "utf8"));
  for (const file of options.valuesFiles ?? []) values = mergeValues(values, await yamlToJson(readFileSync(join(repoRoot, file), "utf8")));
  const problems = validated.stderr.split("\n").filter((l) => l.trim() !== "");
  return { namespace: options.namespace, objects, values, problems };
}

// Views of a rendering.

export function ofKind(r: Rendering, kind: string): RenderedObject[] {
  return r.objects.filter((o) => o.kind === kind);
}

export function find(r: Rendering, kind: string, name: string): Json | undefined {
  return r.objects.find((o) => o.kind === kind && o.name === name)?.object;
}

export function get(r: Rendering, kind: string, name: string): Json {
  const found = find(r, kind, name);
  if (!found) throw new Error(`nothing rendered as ${kind} ${name}; rendered: ${r.objects.map((o) => `${o.kind}/${o.name}`).join(", ")}`);
  return found;
}

/** Every pod template: Deployments' and Jobs'. */
export function podTemplates(r: Rendering): Array<{ owner: string; labels: Json; spec: Json; annotations: Json }> {
  return r.objects
    .filter((o) => o.kind === "Deployment" || o.kind === "Job")
    .map((o) => ({
      owner: `${o.kind}/${o.name}`,
      labels: o.object.spec.template.metadata?.labels ?? {},
      annotations: o.object.spec.template.metadata?.annotations ?? {},
      spec: o.object.spec.template.spec,
    }));
}

export function allContainers(spec: Json): Json[] {
  return [...(spec.initContainers ?? []), ...(spec.containers ?? [])];
}

export function matchesLabels(selector: Json | undefined, labels: Json): boolean {
  if (!selector) return false;
  const want = selector.matchLabels ?? {};
  if ((selector.matchExpressions ?? []).length > 0) throw new Error("the tests read matchLabels only; the chart renders no matchExpressions");
  return Object.entries(want).every(([k, v]) => labels[k] === v);
}

/** The value of an env variable given as a literal. */
export function envValue(container: Json, name: string): string | undefined {
  return (container.env ?? []).find((e: Json) => e.name === name)?.value;
}

/** The argument after a flag ("-c" → the config path). */
export function argAfter(container: Json, flag: string): string | undefined {
  const args: string[] = container.args ?? [];
  const i = args.indexOf(flag);
  return i >= 0 ? args[i + 1] : undefined;
}
