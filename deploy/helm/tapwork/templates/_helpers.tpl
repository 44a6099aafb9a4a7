{{/* Names and labels shared by every template. */}}
{{- define "tapwork.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "tapwork.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "tapwork.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tapwork.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "tapwork.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "tapwork.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "tapwork.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "tapwork.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "tapwork.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if eq $tag "latest" -}}
{{- fail "image.tag must be a pinned version, not latest" -}}
{{- end -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}

{{/* Where the backup pod finds the repository password (a Secret volume). */}}
{{- define "tapwork.backupPasswordFile" -}}
/var/run/secrets/tapwork/repository/password
{{- end -}}

{{/* The tapwork.yaml the ConfigMap carries (docs/config.md for every key). */}}
{{- define "tapwork.config" -}}
{{- $c := .Values.config -}}
state_dir: /var/lib/tapwork
listen:
  http: ":{{ .Values.ports.http }}"
  https: ":{{ .Values.ports.https }}"
admin:
  listen: ":{{ .Values.ports.admin }}"
workers: {{ $c.workers }}
tls:
  profile: {{ .Values.tls.profile }}
  redirect_http: {{ .Values.tls.redirectHttp }}
acme:
{{- with .Values.acme.email }}
  email: {{ . | quote }}
{{- end }}
  directory: {{ .Values.acme.directory | quote }}
{{- with .Values.acme.challenges }}
  challenges: [{{ join ", " . }}]
{{- end }}
{{- with .Values.acme.dnsHook }}
  dns_hook: {{ . | quote }}
{{- end }}
{{- if eq .Values.certStorage.type "s3" }}
  store: {{ required "certStorage.s3.location is required with certStorage.type s3" .Values.certStorage.s3.location | quote }}
{{- end }}
{{- with $c.trustedProxies }}
trusted_proxies:
{{ toYaml . | indent 2 }}
{{- end }}
{{- with $c.limits }}
limits:
{{ toYaml . | indent 2 }}
{{- end }}
timeouts:
  drain: {{ $c.drainSeconds }}s
{{- range $k, $v := $c.timeouts }}
{{- if ne $k "drain" }}
  {{ $k }}: {{ $v }}
{{- end }}
{{- end }}
log:
{{ toYaml $c.log | indent 2 }}
{{- with $c.compression }}
compression:
{{ toYaml . | indent 2 }}
{{- end }}
sites:
{{ toYaml $c.sites | indent 2 }}
{{- with $c.backends }}
backends:
{{ toYaml . | indent 2 }}
{{- end }}
{{- with $c.rateLimits }}
rate_limits:
{{- range $name, $p := . }}
  {{ $name }}:
{{- $q := deepCopy $p }}
{{- if and (eq (toString (get $q "cluster")) "divide") (not (hasKey $q "replicas")) }}
{{- $_ := set $q "replicas" $.Values.replicaCount }}
{{- end }}
{{ toYaml $q | indent 4 }}
{{- end }}
{{- end }}
{{- if .Values.proxyProtocol.enabled }}
proxy_protocol:
  from:
{{- range (required "proxyProtocol.from is required with proxyProtocol.enabled (the load balancer / node ranges)" (.Values.proxyProtocol.from | default list | compact | len | eq 0 | ternary nil .Values.proxyProtocol.from)) }}
    - {{ . | quote }}
{{- end }}
  timeout: {{ .Values.proxyProtocol.timeout }}
  others: {{ .Values.proxyProtocol.others }}
{{- end }}
{{- if .Values.backup.enabled }}
{{- if not .Values.backup.repository }}
{{- fail "backup.enabled needs backup.repository (s3:https://HOST/BUCKET/PREFIX)" }}
{{- end }}
{{- if not .Values.backup.sources }}
{{- fail "backup.enabled needs backup.sources" }}
{{- end }}
backup:
  jobs:
    {{ .Values.backup.job }}:
      # No schedule: the CronJob runs it (tapwork backup --job), not the edge.
      repository: {{ .Values.backup.repository | quote }}
      password_file: {{ include "tapwork.backupPasswordFile" . }}
      sources:
{{ toYaml .Values.backup.sources | indent 8 }}
{{- with .Values.backup.retention }}
      retention:
{{ toYaml . | indent 8 }}
{{- end }}
{{- end }}
{{- with .Values.ingressController }}
{{- if .enabled }}
{{- if and .defaultBackend (not (hasKey ($c.backends | default dict) .defaultBackend)) }}
{{- fail (printf "ingressController.defaultBackend %q is not a key of config.backends" .defaultBackend) }}
{{- end }}
# Ingress-controller mode (docs/kubernetes.md): in-cluster API access with
# the pod's service-account token; identity = $POD_NAME.
kubernetes:
  ingress:
    class: {{ .class | quote }}
    controller: {{ .controllerName | quote }}
    watch_without_class: {{ .watchWithoutClass }}
    namespaces: {{ .namespaces | default list | toJson }}
{{- if .publishAddress }}
    publish_address: {{ .publishAddress | toJson }}
{{- else }}
    publish_service: {{ printf "%s/%s" $.Release.Namespace (include "tapwork.fullname" $) | quote }}
{{- end }}
{{- with .defaultBackend }}
    default_backend: {{ . | quote }}
{{- end }}
    external_name: {{ .externalName }}
{{- if $.Values.gatewayAPI.enabled }}
  gateway:
    controller_name: {{ $.Values.gatewayAPI.controllerName | quote }}
{{- end }}
  leader_election:
    lease: {{ include "tapwork.leaseName" $ | quote }}
    namespace: {{ $.Release.Namespace | quote }}
    duration: {{ .leaseDuration }}
{{- $divide := false }}
{{- range $name, $p := ($c.rateLimits | default dict) }}
{{- if eq (toString (get $p "cluster")) "divide" }}{{ $divide = true }}{{ end }}
{{- end }}
{{- if and $divide .replicasFromService }}
  # cluster: divide rate limits: N = the ready endpoints of this chart's
  # Service (replicaCount above stays the fallback).
  replicas_from:
    service: {{ include "tapwork.fullname" $ | quote }}
    namespace: {{ $.Release.Namespace | quote }}
{{- end }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The leader-election Lease of ingress-controller mode. */}}
{{- define "tapwork.leaseName" -}}
{{- printf "%s-leader" (include "tapwork.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Pod identity for logs and for leader election (POD_NAME). */}}
{{- define "tapwork.podEnv" -}}
- name: POD_NAME
  valueFrom:
    fieldRef: {fieldPath: metadata.name}
- name: POD_NAMESPACE
  valueFrom:
    fieldRef: {fieldPath: metadata.namespace}
{{- if eq .Values.certStorage.type "s3" }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef: {name: {{ .Values.certStorage.s3.secret }}, key: access_key_id}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef: {name: {{ .Values.certStorage.s3.secret }}, key: secret_access_key}
{{- with .Values.certStorage.s3.region }}
- name: AWS_REGION
  value: {{ . | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The body of a prune/check container (after name and args). */}}
{{- define "tapwork.maintenanceContainer" -}}
image: {{ .image }}
imagePullPolicy: {{ .pullPolicy }}
env:
  - name: AWS_ACCESS_KEY_ID
    valueFrom:
      secretKeyRef: {name: {{ .s3Secret }}, key: access_key_id}
  - name: AWS_SECRET_ACCESS_KEY
    valueFrom:
      secretKeyRef: {name: {{ .s3Secret }}, key: secret_access_key}
resources:
  {{- toYaml .resources | nindent 2 }}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities:
    drop: ["ALL"]
volumeMounts:
  - {name: repository-password, mountPath: {{ .pwDir }}, readOnly: true}
  - {name: cache, mountPath: /var/lib/tapwork}
  - {name: tmp, mountPath: /tmp}
{{- end -}}

{{/* Service annotations that turn the PROXY protocol on at the cloud's load balancer. */}}
{{- define "tapwork.ppAnnotations" -}}
{{- if .Values.proxyProtocol.enabled }}
{{- $c := .Values.proxyProtocol.cloud }}
{{- if eq $c "aws" }}
service.beta.kubernetes.io/aws-load-balancer-proxy-protocol: "*"
{{- else if eq $c "digitalocean" }}
service.beta.kubernetes.io/do-loadbalancer-enable-proxy-protocol: "true"
{{- else if eq $c "hetzner" }}
load-balancer.hetzner.cloud/uses-proxyprotocol: "true"
{{- else if eq $c "linode" }}
service.beta.kubernetes.io/linode-loadbalancer-default-proxy-protocol: "v2"
{{- else if eq $c "scaleway" }}
service.beta.kubernetes.io/scw-loadbalancer-proxy-protocol-v2: "true"
{{- else if eq $c "ovh" }}
service.beta.kubernetes.io/ovh-loadbalancer-proxy-protocol: "v2"
{{- else if eq $c "azure" }}
service.beta.kubernetes.io/azure-pls-create: "true"
service.beta.kubernetes.io/azure-pls-proxy-protocol: "true"
{{- end }}
{{- end }}
{{- end }}
