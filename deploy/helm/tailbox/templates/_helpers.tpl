{{/* tailbox.fullname is the name of every object: the release name, plus the chart's unless it contains it. */}}
{{- define "tailbox.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "tailbox.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "tailbox.labels" -}}
{{ include "tailbox.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* tailbox.ha is "true" when config.ha.enabled is. */}}
{{- define "tailbox.ha" -}}
{{- if dig "ha" "enabled" false .Values.config -}}true{{- end -}}
{{- end -}}

{{/* tailbox.fileStore is "true" when the checkpoint is kept in a file (the default store). */}}
{{- define "tailbox.fileStore" -}}
{{- if eq (dig "checkpoint" "store" "file" .Values.config) "file" -}}true{{- end -}}
{{- end -}}

{{/* tailbox.secretName is the Secret holding the MySQL password ("" when none). */}}
{{- define "tailbox.secretName" -}}
{{- if .Values.mysqlPassword.existingSecret -}}
{{- .Values.mysqlPassword.existingSecret -}}
{{- else if .Values.mysqlPassword.value -}}
{{- include "tailbox.fullname" . -}}
{{- end -}}
{{- end -}}

{{/* Paths inside the container. */}}
{{- define "tailbox.configDir" -}}/etc/tailbox/config{{- end -}}
{{- define "tailbox.secretDir" -}}/etc/tailbox/secrets{{- end -}}
{{- define "tailbox.dataDir" -}}/var/lib/tailbox{{- end -}}

{{/*
tailbox.config renders tailbox's configuration file: .Values.config plus
the keys the chart owns (http.listen, checkpoint.file, source.password_file),
failing on a config that sets them itself or cannot run as deployed.
*/}}
{{- define "tailbox.config" -}}
{{- $c := deepCopy .Values.config -}}
{{- if not $c.name -}}
{{- fail "config.name is required: it names the checkpoint (and, with ha, the replicas that share it)" -}}
{{- end -}}
{{- if hasKey (default (dict) $c.http) "listen" -}}
{{- fail "config.http.listen is set by the chart (0.0.0.0:<http.port>, so that probes and Prometheus reach it): remove it and set http.port" -}}
{{- end -}}
{{- $_ := set $c "http" (merge (dict "listen" (printf "0.0.0.0:%d" (int .Values.http.port))) (default (dict) $c.http)) -}}
{{- $cp := default (dict) $c.checkpoint -}}
{{- if include "tailbox.fileStore" . -}}
{{- if hasKey $cp "file" -}}
{{- fail "config.checkpoint.file is set by the chart (on the volume mounted at /var/lib/tailbox): remove it" -}}
{{- end -}}
{{- $_ := set $cp "file" (printf "%s/%s.checkpoint.json" (include "tailbox.dataDir" .) $c.name) -}}
{{- $_ := set $c "checkpoint" $cp -}}
{{- end -}}
{{- $src := default (dict) $c.source -}}
{{- if include "tailbox.secretName" . -}}
{{- if or (hasKey $src "password") (hasKey $src "password_file") -}}
{{- fail "config.source.password and password_file are set by the chart from mysqlPassword: remove them" -}}
{{- end -}}
{{- $_ := set $src "password_file" (printf "%s/%s" (include "tailbox.secretDir" .) .Values.mysqlPassword.key) -}}
{{- $_ := set $c "source" $src -}}
{{- else if not (or (hasKey $src "password") (hasKey $src "password_file")) -}}
{{- fail "no MySQL password: set mysqlPassword.existingSecret or mysqlPassword.value (or config.source.password to a ${VAR} given in env)" -}}
{{- end -}}
{{- if and (gt (int .Values.replicas) 1) (not (include "tailbox.ha" .)) -}}
{{- fail "replicas > 1 needs config.ha.enabled (with checkpoint.store: kafka and delivery: exactly_once, see values-ha.yaml): replicas without ha would each publish every event" -}}
{{- end -}}
{{- toYaml $c -}}
{{- end -}}
