{{/* The release's name for every object, cut to 63 characters (a DNS label). */}}
{{- define "ccmon.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "ccmon.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Selector labels of one component (worker, webhooks, asterisk): pass (list $ "worker"). */}}
{{- define "ccmon.selector" -}}
app.kubernetes.io/name: {{ (index . 0).Chart.Name }}
app.kubernetes.io/instance: {{ (index . 0).Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "ccmon.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* The settings every component shares: Kafka, its credentials, the topics' shape. */}}
{{- define "ccmon.env" -}}
- name: CCMON_BROKER
  value: {{ .Values.kafka.broker | quote }}
- name: CCMON_PARTITIONS
  value: {{ .Values.kafka.partitions | quote }}
- name: CCMON_REPLICATION_FACTOR
  value: {{ .Values.kafka.replicationFactor | quote }}
- name: CCMON_APP_ID
  value: {{ .Values.appId | quote }}
{{- with .Values.kafka.securityProtocol }}
- name: CCMON_KAFKA_SECURITY_PROTOCOL
  value: {{ . | quote }}
{{- end }}
{{- with .Values.kafka.saslMechanism }}
- name: CCMON_KAFKA_SASL_MECHANISM
  value: {{ . | quote }}
{{- end }}
{{- with .Values.kafka.username }}
- name: CCMON_KAFKA_USERNAME
  value: {{ . | quote }}
{{- end }}
{{- if .Values.kafka.passwordSecret.name }}
- name: CCMON_KAFKA_PASSWORD_FILE
  value: /run/secrets/kafka/password
{{- end }}
{{- if .Values.kafka.caSecret.name }}
- name: CCMON_KAFKA_CA_FILE
  value: /run/secrets/kafka-ca/ca.pem
{{- end }}
{{- range $name, $value := .Values.env }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- end -}}

{{/* Volumes and mounts of the Kafka secrets and the writable /tmp (the root is read-only). */}}
{{- define "ccmon.volumes" -}}
- name: tmp
  emptyDir: {}
{{- if .Values.kafka.passwordSecret.name }}
- name: kafka-password
  secret:
    secretName: {{ .Values.kafka.passwordSecret.name }}
    items:
      - key: {{ .Values.kafka.passwordSecret.key }}
        path: password
{{- end }}
{{- if .Values.kafka.caSecret.name }}
- name: kafka-ca
  secret:
    secretName: {{ .Values.kafka.caSecret.name }}
    items:
      - key: {{ .Values.kafka.caSecret.key }}
        path: ca.pem
{{- end }}
{{- end -}}

{{- define "ccmon.mounts" -}}
- name: tmp
  mountPath: /tmp
{{- if .Values.kafka.passwordSecret.name }}
- name: kafka-password
  mountPath: /run/secrets/kafka
  readOnly: true
{{- end }}
{{- if .Values.kafka.caSecret.name }}
- name: kafka-ca
  mountPath: /run/secrets/kafka-ca
  readOnly: true
{{- end }}
{{- end -}}
