{{- define "shop.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "shop.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Selector of one service's pod: (dict "root" $ "service" "order") */}}
{{- define "shop.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .service }}
{{- end -}}

{{- define "shop.secretName" -}}
{{- default (printf "%s-tokens" (include "shop.fullname" .)) .Values.secrets.existingSecret -}}
{{- end -}}

{{/* Every service's address, for `shop --peer`. */}}
{{- define "shop.peers" -}}
{{- $root := . -}}
{{- $peers := list -}}
{{- range $name, $svc := .Values.services -}}
{{- $peers = append $peers (printf "%s=%s-%s:%d" $name (include "shop.fullname" $root) $name (int $svc.port)) -}}
{{- end -}}
{{- join "," $peers -}}
{{- end -}}
