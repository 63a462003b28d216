{{/* The chart's name, or nameOverride. */}}
{{- define "tams-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name of the release's objects: the release name when it already says tams-operator. */}}
{{- define "tams-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "tams-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tams-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tams-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "tams-operator.labels" -}}
helm.sh/chart: {{ include "tams-operator.chart" . }}
{{ include "tams-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "tams-operator.serviceAccountName" -}}
{{- default (include "tams-operator.fullname" .) .Values.serviceAccount.name }}
{{- end }}

{{/* The operator's image, which is also the default TAMS API image of TamsStores. */}}
{{- define "tams-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The peering object's name when replicas peer, else empty (TAMS_OPERATOR_PEERING). */}}
{{- define "tams-operator.peering" -}}
{{- if gt (int .Values.replicas) 1 }}{{ include "tams-operator.fullname" . }}{{ end }}
{{- end }}
