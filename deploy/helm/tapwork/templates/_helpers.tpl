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

{{/* The tapwork.yaml the ConfigMap carries: only keys tapwork knows today. */}}
{{- define "tapwork.config" -}}
{{- $c := .Values.config -}}
listen:
  http: ":{{ .Values.ports.http }}"
admin:
  listen: ":{{ .Values.ports.admin }}"
workers: {{ $c.workers }}
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
sites:
{{ toYaml $c.sites | indent 2 }}
{{- with $c.backends }}
backends:
{{ toYaml . | indent 2 }}
{{- end }}
{{- end -}}

{{/* Settings tapwork reads once TLS/ACME and S3 land (wired later): env vars. */}}
{{- define "tapwork.pendingEnv" -}}
- name: TAPWORK_ACME_EMAIL
  value: {{ .Values.acme.email | quote }}
- name: TAPWORK_ACME_DIRECTORY
  value: {{ .Values.acme.directory | quote }}
{{- if eq .Values.certStorage.type "s3" }}
- name: TAPWORK_CERT_STORE
  value: {{ printf "s3://%s/%s" .Values.certStorage.s3.bucket .Values.certStorage.s3.prefix | quote }}
- name: TAPWORK_S3_ENDPOINT
  value: {{ .Values.certStorage.s3.endpoint | quote }}
- name: TAPWORK_S3_REGION
  value: {{ .Values.certStorage.s3.region | quote }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef: {name: {{ .Values.certStorage.s3.credentialsSecret }}, key: access_key_id}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef: {name: {{ .Values.certStorage.s3.credentialsSecret }}, key: secret_access_key}
{{- else }}
- name: TAPWORK_CERT_STORE
  value: {{ printf "k8s-secret://%s" .Values.certStorage.secret.name | quote }}
{{- end }}
- name: POD_NAME
  valueFrom:
    fieldRef: {fieldPath: metadata.name}
- name: POD_NAMESPACE
  valueFrom:
    fieldRef: {fieldPath: metadata.namespace}
{{- end -}}
