{{/* Names, labels and checks shared by the templates. */}}

{{- define "repram-flux.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-scoped name; 52 characters leave room for "-headless" and StatefulSet suffixes. */}}
{{- define "repram-flux.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "repram-flux.headlessName" -}}
{{- printf "%s-headless" (include "repram-flux.fullname" .) }}
{{- end }}

{{/* DISCOVERY_DOMAIN: the headless Service resolves to every pod, ready or not. */}}
{{- define "repram-flux.discoveryDomain" -}}
{{- printf "%s.%s.svc.%s" (include "repram-flux.headlessName" .) .Release.Namespace .Values.clusterDomain }}
{{- end }}

{{- define "repram-flux.secretName" -}}
{{- default (printf "%s-cluster-secret" (include "repram-flux.fullname" .)) .Values.clusterSecret.existingSecret }}
{{- end }}

{{- define "repram-flux.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "repram-flux.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "repram-flux.selectorLabels" -}}
app.kubernetes.io/name: {{ include "repram-flux.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "repram-flux.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "repram-flux.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: kv-store
{{- end }}

{{/* The node ports of one pod, as a list of integers. */}}
{{- define "repram-flux.ports" -}}
{{- $base := int .Values.basePort }}
{{- range $i := until (int .Values.maxPorts) }}
- {{ add $base $i }}
{{- end }}
{{- end }}

{{/* Refuses values that would start a broken or insecure cluster, with one clear line each. */}}
{{- define "repram-flux.validate" -}}
{{- $nodes := int .Values.nodesPerPod }}
{{- $max := int .Values.maxPorts }}
{{- $base := int .Values.basePort }}
{{- if lt (int .Values.replicaCount) 1 }}
{{- fail (printf "replicaCount=%v: expected at least 1" .Values.replicaCount) }}
{{- end }}
{{- if lt $nodes 1 }}
{{- fail (printf "nodesPerPod=%v: expected at least 1" .Values.nodesPerPod) }}
{{- end }}
{{- if gt $nodes $max }}
{{- fail (printf "nodesPerPod=%d exceeds maxPorts=%d (NODE_COUNT must fit in MAX_PORTS)" $nodes $max) }}
{{- end }}
{{- if gt $max 100 }}
{{- fail (printf "maxPorts=%d: at most 100 container ports per pod" $max) }}
{{- end }}
{{- if or (lt $base 1) (gt (add $base $max -1) 65535) }}
{{- fail (printf "basePort=%d, maxPorts=%d: the range must lie within 1..65535" $base $max) }}
{{- end }}
{{- range $k, $v := .Values.config }}
{{- if has $k (list "NODE_COUNT" "BASE_PORT" "MAX_PORTS" "REPLICATION_FACTOR" "DISCOVERY_DOMAIN" "BIND_ADDR" "ADVERTISE_HOST" "REPRAM_TRUSTED_PROXIES") }}
{{- fail (printf "config.%s: set by the chart; use the matching value (see values.yaml)" $k) }}
{{- end }}
{{- if eq $k "REPRAM_CLUSTER_SECRET" }}
{{- fail "config.REPRAM_CLUSTER_SECRET: never put the secret in values; use clusterSecret.existingSecret (or let the chart generate one)" }}
{{- end }}
{{- if eq $k "REPRAM_TRUST_PROXY" }}
{{- fail "config.REPRAM_TRUST_PROXY: replaced by REPRAM_TRUSTED_PROXIES; use the trustedProxies value" }}
{{- end }}
{{- end }}
{{- end }}
