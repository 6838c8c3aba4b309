{{- define "credgate.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "credgate.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "credgate.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "credgate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "credgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "credgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "credgate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "credgate.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Several replicas share rate limits only through Redis. */}}
{{- define "credgate.checkValues" -}}
{{- $replicas := int .Values.replicaCount -}}
{{- if .Values.autoscaling.enabled -}}{{- $replicas = int .Values.autoscaling.maxReplicas -}}{{- end -}}
{{- $redis := dig "rate_limit" "redis" "address" "" .Values.config -}}
{{- if and (gt $replicas 1) (not $redis) -}}
{{- fail "config.rate_limit.redis.address is required with more than one replica: without Redis every replica keeps its own rate-limit counters" -}}
{{- end -}}
{{- if and .Values.projectedToken.enabled (ne (dig "vault" "auth" "method" "" .Values.config) "jwt") -}}
{{- fail "projectedToken.enabled goes with config.vault.auth.method: jwt" -}}
{{- end -}}
{{- end -}}
