{{/*
Everything about the system's shape comes from two generated inputs in files/
(written by `node envoy/generate.ts`, checked fresh by `make checkgenerate`):
  files/topology.json         a verbatim copy of topology.json
  files/envoy/*.yaml          envoy/generated/kubernetes, verbatim
*/}}

{{/* topology.json, as a dict. */}}
{{- define "shop.topology" -}}
{{- .Files.Get "files/topology.json" -}}
{{- end -}}

{{/*
The namespace envoy/generate.ts writes into the kubernetes target's DNS names
(its default). Installed elsewhere, the chart puts the release's namespace in
its place: the result is what `generateConfigs({ target: "kubernetes",
namespace })` generates, which test/helm checks.
*/}}
{{- define "shop.generatorNamespace" -}}shop{{- end -}}

{{/* A generated Envoy config (file name under files/envoy/), for this release's namespace. */}}
{{- define "shop.envoyConfig" -}}
{{- $text := .root.Files.Get (printf "files/envoy/%s" .file) -}}
{{- if not $text -}}
{{- fail (printf "files/envoy/%s is missing: run `make generate-envoy`" .file) -}}
{{- end -}}
{{- $from := printf ".%s.svc.cluster.local" (include "shop.generatorNamespace" .root) -}}
{{- $to := printf ".%s.svc.cluster.local" .root.Release.Namespace -}}
{{- replace $from $to $text -}}
{{- end -}}

{{/*
The gRPC health name of each service (its first gRPC service, e.g.
shop.orders.v1.OrderService), as the generator wrote it into the edge's
active health checks: the readiness probes check the same name.
*/}}
{{- define "shop.healthNames" -}}
{{- $edge := .Files.Get "files/envoy/edge.yaml" | fromYaml -}}
{{- $names := dict -}}
{{- range $cluster := $edge.static_resources.clusters -}}
{{- range $check := ($cluster.health_checks | default list) -}}
{{- if $check.grpc_health_check -}}
{{- $_ := set $names $cluster.name $check.grpc_health_check.service_name -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- toJson $names -}}
{{- end -}}

{{/*
Fails unless values.services lists exactly topology.json's services, and the
shutdown and metrics settings hold together. Included by every template that
renders services, so `helm template` stops at the first problem.
*/}}
{{- define "shop.check" -}}
{{- $topology := include "shop.topology" . | fromJson -}}
{{- range $name, $_ := $topology.services -}}
{{- if not (hasKey $.Values.services $name) -}}
{{- fail (printf "topology.json has the service %q: add services.%s (with its database Secret) to the values" $name $name) -}}
{{- end -}}
{{- end -}}
{{- range $name, $_ := .Values.services -}}
{{- if not (hasKey $topology.services $name) -}}
{{- fail (printf "services.%s: topology.json has no such service (it has %s)" $name (keys $topology.services | sortAlpha | join ", ")) -}}
{{- end -}}
{{- end -}}
{{- $s := .Values.shutdown -}}
{{- $bound := add (int $s.preStopSleepSeconds) (div (add (int $s.drainTimeoutMs) 999) 1000) -}}
{{- if le (int $s.terminationGracePeriodSeconds) (int $bound) -}}
{{- fail (printf "shutdown.terminationGracePeriodSeconds (%d) must exceed preStopSleepSeconds + drainTimeoutMs (%d s), or the kubelet kills pods mid-drain" (int $s.terminationGracePeriodSeconds) (int $bound)) -}}
{{- end -}}
{{- $taken := list -}}
{{- range $name, $svc := $topology.services -}}
{{- $taken = append $taken (list (int $svc.port) (add (int $svc.port) 39) $name) -}}
{{- end -}}
{{- $edgePort := int (($topology.edge | default dict).port | default 8080) -}}
{{- $taken = append $taken (list $edgePort (add $edgePort 2) "the edge") -}}
{{- range $port := list (int .Values.metrics.envoyPort) (int .Values.metrics.appPort) -}}
{{- range $range := $taken -}}
{{- if and (ge $port (index $range 0)) (le $port (index $range 1)) -}}
{{- fail (printf "metrics port %d is in the port block of %s (topology.json): pick another" $port (index $range 2)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if eq (int .Values.metrics.envoyPort) (int .Values.metrics.appPort) -}}
{{- fail "metrics.envoyPort and metrics.appPort must differ" -}}
{{- end -}}
{{- end -}}

{{/*
One service's settings: serviceDefaults under services.<name>, its ports from
the scheme in envoy/ports.ts (replica 0: every pod alike), replicas from
topology.json unless set. Called with (dict "root" $ "name" "orders"); returns JSON.
*/}}
{{- define "shop.service" -}}
{{- $topology := include "shop.topology" .root | fromJson -}}
{{- $t := index $topology.services .name -}}
{{- $cfg := mergeOverwrite (deepCopy .root.Values.serviceDefaults) (deepCopy (index .root.Values.services .name)) -}}
{{- $port := int $t.port -}}
{{- $_ := set $cfg "name" .name -}}
{{- $_ := set $cfg "ports" (dict "app" $port "inbound" (add $port 10) "outbound" (add $port 20) "admin" (add $port 30)) -}}
{{- if not (hasKey $cfg "replicas") -}}
{{- $_ := set $cfg "replicas" (int $t.replicas) -}}
{{- end -}}
{{- $_ := set $cfg "envName" (regexReplaceAll "[^A-Z0-9]+" (upper .name) "_") -}}
{{- toJson $cfg -}}
{{- end -}}

{{/* The edge's ports: topology.json's edge.port E, its admin E + 1, the reflection backend E + 2. */}}
{{- define "shop.edgePorts" -}}
{{- $topology := include "shop.topology" . | fromJson -}}
{{- $port := int (($topology.edge | default dict).port | default 8080) -}}
{{- toJson (dict "listener" $port "admin" (add $port 1) "reflection" (add $port 2)) -}}
{{- end -}}

{{- define "shop.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{ include "shop.selectorLabels" . }}
app.kubernetes.io/part-of: shop-mesh
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- end -}}

{{- define "shop.selectorLabels" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "shop.image" -}}
{{- $image := .Values.image -}}
{{- if $image.digest -}}
{{- printf "%s@%s" $image.repository $image.digest -}}
{{- else -}}
{{- printf "%s:%s" $image.repository ($image.tag | default .Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{- define "shop.envoyImage" -}}
{{- printf "%s:%s" .Values.envoy.image.repository .Values.envoy.image.tag -}}
{{- end -}}

{{- define "shop.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ int .Values.runAsUser }}
runAsGroup: {{ int .Values.runAsGroup }}
fsGroup: {{ int .Values.runAsGroup }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "shop.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ int .Values.runAsUser }}
runAsGroup: {{ int .Values.runAsGroup }}
allowPrivilegeEscalation: false
privileged: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Scheduling of a pod: (dict "root" $ "component" "orders"). */}}
{{- define "shop.scheduling" -}}
{{- with .root.Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .root.Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .root.Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if .root.Values.spreadAcrossNodes }}
topologySpreadConstraints:
  - maxSkew: 1
    topologyKey: kubernetes.io/hostname
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
        {{- include "shop.selectorLabels" . | nindent 8 }}
{{- end }}
{{- end -}}

{{/*
What the chart adds to a generated Envoy config, merged by Envoy over it
(--config-yaml: its listeners and clusters are appended to the generated
ones): the Envoy's admin and the service's /metrics listen on the pod's
127.0.0.1 only, so Prometheus and the kubelet reach them through these
listeners, which serve nothing else.
  envoyPort  /stats/prometheus and /ready, from Envoy's admin
  appPort    /metrics, from the service (sidecars only)
Called with (dict "root" $ "admin" <admin port> "app" <app port or 0>); returns JSON.
*/}}
{{- define "shop.envoyMetricsBootstrap" -}}
{{- $m := .root.Values.metrics -}}
{{- $listeners := list (include "shop.metricsListener" (dict "name" "envoy_metrics" "port" $m.envoyPort "routes" (list (list "/stats/prometheus" "envoy_admin") (list "/ready" "envoy_admin"))) | fromJson) -}}
{{- $clusters := list (include "shop.loopbackCluster" (dict "name" "envoy_admin" "port" .admin) | fromJson) -}}
{{- if .app -}}
{{- $listeners = append $listeners (include "shop.metricsListener" (dict "name" "app_metrics" "port" $m.appPort "routes" (list (list "/metrics" "app_metrics"))) | fromJson) -}}
{{- $clusters = append $clusters (include "shop.loopbackCluster" (dict "name" "app_metrics" "port" .app) | fromJson) -}}
{{- end -}}
{{- toJson (dict "static_resources" (dict "listeners" $listeners "clusters" $clusters)) -}}
{{- end -}}

{{- define "shop.metricsListener" -}}
{{- $routes := list -}}
{{- range .routes -}}
{{- $routes = append $routes (dict "match" (dict "path" (index . 0)) "route" (dict "cluster" (index . 1) "timeout" "5s")) -}}
{{- end -}}
{{- $hcm := dict
  "@type" "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
  "stat_prefix" .name
  "codec_type" "AUTO"
  "route_config" (dict "name" .name "virtual_hosts" (list (dict "name" .name "domains" (list "*") "routes" $routes)))
  "http_filters" (list (dict "name" "envoy.filters.http.router" "typed_config" (dict "@type" "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router")))
-}}
{{- toJson (dict
  "name" .name
  "address" (dict "socket_address" (dict "address" "0.0.0.0" "port_value" (int .port)))
  "filter_chains" (list (dict "filters" (list (dict "name" "envoy.filters.network.http_connection_manager" "typed_config" $hcm))))
) -}}
{{- end -}}

{{- define "shop.loopbackCluster" -}}
{{- $endpoint := dict "endpoint" (dict "address" (dict "socket_address" (dict "address" "127.0.0.1" "port_value" (int .port)))) -}}
{{- toJson (dict
  "name" .name
  "type" "STATIC"
  "connect_timeout" "1s"
  "load_assignment" (dict "cluster_name" .name "endpoints" (list (dict "lb_endpoints" (list $endpoint))))
) -}}
{{- end -}}

{{/*
Envoy's arguments, as `make mesh` passes them (runner/mesh.ts), plus the
metrics listeners: (dict "root" $ "config" "/etc/envoy/sidecar-orders.yaml" "bootstrap" <json> "concurrency" 1).
*/}}
{{- define "shop.envoyArgs" -}}
- -c
- {{ .config }}
- --config-yaml
- |
  {{- .bootstrap | fromJson | toYaml | nindent 2 }}
- --disable-hot-restart
- --concurrency
- {{ .concurrency | int | quote }}
- --log-level
- {{ .root.Values.envoy.logLevel }}
- --file-flush-interval-msec
- "1000"
- --log-format
- {{ `{"time":"%Y-%m-%dT%T.%eZ","level":"%l","msg":"%j","logger":"%n"}` | toJson }}
{{- end -}}

{{/* Environment every shop process gets: (dict "root" $ "service" "orders" or "reflection"). */}}
{{- define "shop.commonEnv" -}}
- name: MESH_INSTANCE
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: OTEL_SERVICE_NAME
  value: {{ .service | quote }}
{{- with .root.Values.opentelemetry.endpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ . | quote }}
{{- end }}
- name: LOG_LEVEL
  value: {{ .root.Values.logLevel | quote }}
- name: DRAIN_TIMEOUT_MS
  value: {{ .root.Values.shutdown.drainTimeoutMs | int | quote }}
{{- end -}}

{{/* A service's PostgreSQL: (dict "root" $ "svc" <service settings>). */}}
{{- define "shop.databaseEnv" -}}
- name: STORE
  value: postgres
- name: {{ printf "%s_DATABASE_URL" .svc.envName }}
  valueFrom:
    secretKeyRef:
      name: {{ .svc.database.secretName }}
      key: {{ .svc.database.secretKey }}
- name: DATABASE_POOL_SIZE
  value: {{ .root.Values.database.poolSize | int | quote }}
{{- end -}}
