{{/*
Everything about the system's shape comes from two generated inputs in files/
(written by `node envoy/generate.ts`, checked fresh by `make checkgenerate`):
  files/topology.json         a verbatim copy of topology.json
  files/envoy/*.yaml          envoy/generated/kubernetes, verbatim: the sidecars'
                              and the edge's configs (edge-tls.yaml: the edge
                              serving TLS), and sds-*.yaml, the SDS resource
                              files every Envoy reads from /etc/envoy, naming
                              the certificate mounted at /etc/shop/mesh-tls
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

{{/*
The SPIFFE trust domain and namespace the generator writes into the proxies'
RBAC principals and SAN matchers (its defaults). The chart puts
meshTLS.trustDomain and the release's namespace in their place, as
`generateConfigs({ spiffe: { trustDomain, namespace } })` generates them, so
they name the identities its certificates carry.
*/}}
{{- define "shop.generatorSpiffePrefix" -}}spiffe://shop.local/ns/shop/sa/{{- end -}}

{{/* A generated Envoy config (file name under files/envoy/), for this release's namespace and trust domain. */}}
{{- define "shop.envoyConfig" -}}
{{- $text := .root.Files.Get (printf "files/envoy/%s" .file) -}}
{{- if not $text -}}
{{- fail (printf "files/envoy/%s is missing: run `make generate-envoy`" .file) -}}
{{- end -}}
{{- $from := printf ".%s.svc.cluster.local" (include "shop.generatorNamespace" .root) -}}
{{- $to := printf ".%s.svc.cluster.local" .root.Release.Namespace -}}
{{- $spiffe := printf "spiffe://%s/ns/%s/sa/" .root.Values.meshTLS.trustDomain .root.Release.Namespace -}}
{{- replace $from $to $text | replace (include "shop.generatorSpiffePrefix" .root) $spiffe -}}
{{- end -}}

{{/* The SDS resource files every Envoy reads beside its config (files/envoy/sds-*.yaml), as a sorted list of names. */}}
{{- define "shop.sdsFiles" -}}
{{- $names := list -}}
{{- range $path, $_ := .Files.Glob "files/envoy/sds-*.yaml" -}}
{{- $names = append $names (base $path) -}}
{{- end -}}
{{- toJson (sortAlpha $names) -}}
{{- end -}}

{{/* The edge's generated config: edge-tls.yaml when edge.tls.enabled (it reads /etc/shop/edge-tls/), else edge.yaml. */}}
{{- define "shop.edgeConfigFile" -}}
{{- if .Values.edge.tls.enabled -}}edge-tls.yaml{{- else -}}edge.yaml{{- end -}}
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
{{- range $port := list (int .Values.metrics.envoyPort) (int .Values.metrics.appPort) (int .Values.metrics.probePort) -}}
{{- range $range := $taken -}}
{{- if and (ge $port (index $range 0)) (le $port (index $range 1)) -}}
{{- fail (printf "metrics port %d is in the port block of %s (topology.json): pick another" $port (index $range 2)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if or (eq (int .Values.metrics.envoyPort) (int .Values.metrics.appPort)) (eq (int .Values.metrics.envoyPort) (int .Values.metrics.probePort)) (eq (int .Values.metrics.appPort) (int .Values.metrics.probePort)) -}}
{{- fail "metrics.envoyPort, metrics.appPort and metrics.probePort must differ" -}}
{{- end -}}
{{- range $signer, $_ := .Values.tokenKeys.signingSecrets -}}
{{- if not (or (hasKey $topology.services $signer) (eq $signer "edge-backend")) -}}
{{- fail (printf "tokenKeys.signingSecrets.%s: no such signer (the services of topology.json and edge-backend sign tokens)" $signer) -}}
{{- end -}}
{{- end -}}
{{- range $component, $_ := .Values.meshTLS.secrets -}}
{{- if not (or (hasKey $topology.services $component) (has $component (list "edge" "edge-backend"))) -}}
{{- fail (printf "meshTLS.secrets.%s: no such identity (the services of topology.json, edge and edge-backend have mesh certificates)" $component) -}}
{{- end -}}
{{- end -}}
{{- include "shop.requireSecrets" . -}}
{{- end -}}

{{/*
The chart renders nothing without the Secrets it cannot make: token keys and
(without cert-manager) mesh certificates. Checked in one order from every
template, so a rendering always names the first one missing.
*/}}
{{- define "shop.requireSecrets" -}}
{{- $topology := include "shop.topology" . | fromJson -}}
{{- $components := list -}}
{{- range $name, $_ := $topology.services -}}
{{- if (include "shop.service" (dict "root" $ "name" $name) | fromJson).enabled -}}
{{- $components = append $components $name -}}
{{- end -}}
{{- end -}}
{{- if .Values.edge.enabled -}}
{{- $components = append $components "edge" -}}
{{- end -}}
{{- range $component := $components -}}
{{- $_ := include "shop.secretNames" (dict "root" $ "component" $component) -}}
{{- end -}}
{{- end -}}

{{/* The mesh identities the release runs: every enabled service, edge, and edge-backend (beside the edge, when it runs). */}}
{{- define "shop.meshIdentities" -}}
{{- $topology := include "shop.topology" . | fromJson -}}
{{- $ids := list -}}
{{- range $name, $_ := $topology.services -}}
{{- if (include "shop.service" (dict "root" $ "name" $name) | fromJson).enabled -}}
{{- $ids = append $ids $name -}}
{{- end -}}
{{- end -}}
{{- if .Values.edge.enabled -}}
{{- $ids = append $ids "edge" -}}
{{- if .Values.edge.reflection -}}
{{- $ids = append $ids "edge-backend" -}}
{{- end -}}
{{- end -}}
{{- toJson $ids -}}
{{- end -}}

{{/* The Secret with an identity's mesh certificate, `required` without cert-manager: (dict "root" $ "component" "orders"). */}}
{{- define "shop.meshTLSSecret" -}}
{{- $v := .root.Values -}}
{{- if $v.meshTLS.certManager.enabled -}}
{{- $_ := required "meshTLS.certManager.issuerRef.name is required with meshTLS.certManager.enabled: the cert-manager Issuer or ClusterIssuer that signs the mesh certificates (it must fill ca.crt)" $v.meshTLS.certManager.issuerRef.name -}}
{{- printf "%s-%s-mesh-tls" (include "shop.fullname" .root) .component -}}
{{- else -}}
{{- required (printf "meshTLS.secrets.%s is required (or set meshTLS.certManager.enabled): the name of a Secret in namespace %s with tls.crt, tls.key and ca.crt, %s's mesh certificate, with the URI SAN %s, for client and server auth" .component .root.Release.Namespace .component (include "shop.spiffeID" .)) (index $v.meshTLS.secrets .component) -}}
{{- end -}}
{{- end -}}

{{/* The release's prefix for the Secrets and Certificates the chart names itself. */}}
{{- define "shop.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* A component's SPIFFE ID (its ServiceAccount is named after it): (dict "root" $ "component" "orders"). */}}
{{- define "shop.spiffeID" -}}
{{- printf "spiffe://%s/ns/%s/sa/%s" .root.Values.meshTLS.trustDomain .root.Release.Namespace .component -}}
{{- end -}}

{{/*
The Secrets a component's pod mounts, each `required`: (dict "root" $
"component" "orders" or "edge"); returns JSON:
  jwks     tokenKeys.publicSetSecret            key jwks.json    (the edge: when edge-backend runs; else "")
  signing  tokenKeys.signingSecrets.<service>   key keys.json    (the edge: edge-backend's, when it runs; else "")
  meshTLS         <fullname>-<component>-mesh-tls with cert-manager, else meshTLS.secrets.<component>
  backendMeshTLS  the edge: edge-backend's mesh certificate, when it runs (else "")
  edgeTLS         the edge's public certificate, with edge.tls.enabled (else "")
*/}}
{{- define "shop.secretNames" -}}
{{- $v := .root.Values -}}
{{- $ns := .root.Release.Namespace -}}
{{- $out := dict "jwks" "" "signing" "" "backendMeshTLS" "" "edgeTLS" "" -}}
{{- $signer := ternary "edge-backend" .component (eq .component "edge") -}}
{{- if or (ne .component "edge") $v.edge.reflection -}}
{{- $_ := set $out "jwks" (required (printf "tokenKeys.publicSetSecret is required: the name of a Secret in namespace %s whose key jwks.json is the public token key set (JWKS) every shop process verifies with. `node runner/keys.ts --out <dir>` writes it to <dir>/jwks.json; create the Secret from that file (the chart creates none)" $ns) $v.tokenKeys.publicSetSecret) -}}
{{- $_ := set $out "signing" (required (printf "tokenKeys.signingSecrets.%s is required: the name of a Secret in namespace %s whose key keys.json holds the private keys %s signs tokens with ({\"keys\": [<private JWK>...]}). `node runner/keys.ts --out <dir>` writes them to <dir>/signing/%s.json; create the Secret from that file (the chart creates none)" $signer $ns $signer $signer) (index $v.tokenKeys.signingSecrets $signer)) -}}
{{- end -}}
{{- $_ := set $out "meshTLS" (include "shop.meshTLSSecret" .) -}}
{{- if and (eq .component "edge") $v.edge.reflection -}}
{{- $_ := set $out "backendMeshTLS" (include "shop.meshTLSSecret" (dict "root" .root "component" "edge-backend")) -}}
{{- end -}}
{{- if and (eq .component "edge") $v.edge.tls.enabled -}}
{{- if $v.edge.tls.certManager.enabled -}}
{{- $_ := required "edge.tls.certManager.issuerRef.name is required with edge.tls.certManager.enabled: the cert-manager Issuer or ClusterIssuer of the edge's public certificate" $v.edge.tls.certManager.issuerRef.name -}}
{{- if not $v.edge.tls.certManager.dnsNames -}}
{{- fail "edge.tls.certManager.dnsNames is required with edge.tls.certManager.enabled: the edge's public names" -}}
{{- end -}}
{{- $_ := set $out "edgeTLS" (printf "%s-edge-tls" (include "shop.fullname" .root)) -}}
{{- else -}}
{{- $_ := set $out "edgeTLS" (required (printf "edge.tls.secretName is required with edge.tls.enabled (or set edge.tls.certManager.enabled): the name of a kubernetes.io/tls Secret in namespace %s with the edge's public certificate (tls.crt, tls.key)" $ns) $v.edge.tls.secretName) -}}
{{- end -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/* Where the token keys are: SHOP_JWKS_FILE, and SHOP_SIGNING_KEYS_FILE when the container signs. (dict "signing" <bool>). */}}
{{- define "shop.tokenKeyEnv" -}}
- name: SHOP_JWKS_FILE
  value: /etc/shop/token-keys/jwks.json
{{- if .signing }}
- name: SHOP_SIGNING_KEYS_FILE
  value: /etc/shop/signing-keys/keys.json
{{- end }}
{{- end -}}

{{/*
The Secret volumes of a pod, each a whole-directory mount (never subPath: a
changed Secret reaches the files, which the processes and Envoy read again).
(dict "secrets" <shop.secretNames>); readable by the containers' group only.
*/}}
{{- define "shop.secretVolumes" -}}
{{- with .secrets.jwks }}
- name: token-keys
  secret:
    secretName: {{ . }}
    defaultMode: 0440
    items:
      - key: jwks.json
        path: jwks.json
{{- end }}
{{- with .secrets.signing }}
- name: signing-keys
  secret:
    secretName: {{ . }}
    defaultMode: 0440
    items:
      - key: keys.json
        path: keys.json
{{- end }}
{{- range $volume, $secret := dict "mesh-tls" .secrets.meshTLS "edge-backend-mesh-tls" .secrets.backendMeshTLS }}
{{- with $secret }}
- name: {{ $volume }}
  secret:
    secretName: {{ . }}
    defaultMode: 0440
    items:
      - key: tls.crt
        path: tls.crt
      - key: tls.key
        path: tls.key
      - key: ca.crt
        path: ca.crt
{{- end }}
{{- end }}
{{- with .secrets.edgeTLS }}
- name: edge-tls
  secret:
    secretName: {{ . }}
    defaultMode: 0440
    items:
      - key: tls.crt
        path: tls.crt
      - key: tls.key
        path: tls.key
{{- end }}
{{- end -}}

{{/* The token-key mounts of a shop process: (dict "signing" <bool>). */}}
{{- define "shop.tokenKeyMounts" -}}
- name: token-keys
  mountPath: /etc/shop/token-keys
  readOnly: true
{{- if .signing }}
- name: signing-keys
  mountPath: /etc/shop/signing-keys
  readOnly: true
{{- end }}
{{- end -}}

{{/* A container's mesh certificate, where the generated configs and the edge backend read it: (dict "volume" "mesh-tls"). */}}
{{- define "shop.meshTLSMount" -}}
- name: {{ .volume | default "mesh-tls" }}
  mountPath: /etc/shop/mesh-tls
  readOnly: true
{{- end -}}

{{/*
Egress every pod of the release needs: DNS (UDP and TCP), and the collector
when spans are exported. Then networkPolicy.egress.extra.
*/}}
{{- define "shop.egressDNS" -}}
{{- $dns := .Values.networkPolicy.egress.dns -}}
# DNS: the sidecars' STRICT_DNS clusters, the services' database and NATS host names.
- ports:
    - protocol: UDP
      port: {{ $dns.port | int }}
    - protocol: TCP
      port: {{ $dns.port | int }}
  {{- with $dns.to }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}

{{- define "shop.egressCollectorAndExtra" -}}
{{- $e := .Values.networkPolicy.egress -}}
{{- if .Values.opentelemetry.endpoint }}
# The OpenTelemetry collector (opentelemetry.endpoint).
- ports:
    - protocol: TCP
      port: {{ $e.opentelemetry.port | int }}
  {{- with $e.opentelemetry.to }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- with $e.extra }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* An egress rule to the pods of a service of this release, on its sidecar's inbound port: (dict "root" $ "name" "catalog" "comment" "..."). */}}
{{- define "shop.egressToService" -}}
{{- $callee := include "shop.service" (dict "root" .root "name" .name) | fromJson -}}
# {{ .comment }}
- to:
    - podSelector:
        matchLabels:
          {{- include "shop.selectorLabels" (dict "root" .root "component" .name) | nindent 10 }}
  ports:
    - protocol: TCP
      port: {{ $callee.ports.inbound | int }}
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
  probePort  grpc.health.v1.Health/Check alone, cleartext HTTP/2, from the service (sidecars
             only): the kubelet's native gRPC probes cannot speak the inbound listener's mTLS
Called with (dict "root" $ "admin" <admin port> "app" <app port or 0>); returns JSON.
*/}}
{{- define "shop.envoyMetricsBootstrap" -}}
{{- $m := .root.Values.metrics -}}
{{- $listeners := list (include "shop.metricsListener" (dict "name" "envoy_metrics" "port" $m.envoyPort "routes" (list (list "/stats/prometheus" "envoy_admin") (list "/ready" "envoy_admin"))) | fromJson) -}}
{{- $clusters := list (include "shop.loopbackCluster" (dict "name" "envoy_admin" "port" .admin) | fromJson) -}}
{{- if .app -}}
{{- $listeners = append $listeners (include "shop.metricsListener" (dict "name" "app_metrics" "port" $m.appPort "routes" (list (list "/metrics" "app_metrics"))) | fromJson) -}}
{{- $clusters = append $clusters (include "shop.loopbackCluster" (dict "name" "app_metrics" "port" .app) | fromJson) -}}
{{- $listeners = append $listeners (include "shop.metricsListener" (dict "name" "app_health" "port" $m.probePort "routes" (list (list "/grpc.health.v1.Health/Check" "app_health"))) | fromJson) -}}
{{- $clusters = append $clusters (include "shop.loopbackCluster" (dict "name" "app_health" "port" .app "http2" true) | fromJson) -}}
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
{{- $cluster := dict
  "name" .name
  "type" "STATIC"
  "connect_timeout" "1s"
  "load_assignment" (dict "cluster_name" .name "endpoints" (list (dict "lb_endpoints" (list $endpoint))))
-}}
{{- if .http2 -}}
{{- $_ := set $cluster "typed_extension_protocol_options" (dict "envoy.extensions.upstreams.http.v3.HttpProtocolOptions" (dict
  "@type" "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
  "explicit_http_config" (dict "http2_protocol_options" dict))) -}}
{{- end -}}
{{- toJson $cluster -}}
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
