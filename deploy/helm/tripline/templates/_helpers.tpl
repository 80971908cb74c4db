{{- define "tripline.name" -}}tripline{{- end -}}

{{- define "tripline.labels" -}}
app.kubernetes.io/name: tripline
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Labels of the pods that carry tripline (the gateway's in sidecar mode). */}}
{{- define "tripline.podSelector" -}}
{{- if eq .Values.mode "sidecar" -}}
app.kubernetes.io/name: {{ .Values.gateway.name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- else -}}
app.kubernetes.io/name: tripline
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
{{- end -}}

{{- define "tripline.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end -}}

{{- define "tripline.secretEnv" -}}
- name: {{ .env }}
  valueFrom:
    secretKeyRef:
      name: {{ .secret }}
      key: {{ .key }}
      optional: true
{{- end -}}

{{/* The tripline container. */}}
{{- define "tripline.container" -}}
- name: tripline
  image: {{ include "tripline.image" . }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  args: ["run", "--config", "/etc/tripline/config.toml", "--registry", "/etc/tripline/registry.toml"]
  ports:
    - name: metrics
      containerPort: {{ .Values.metrics.port }}
      protocol: TCP
    {{- if .Values.api.enabled }}
    - name: api
      containerPort: {{ .Values.api.port }}
      protocol: TCP
    {{- end }}
  env:
    # The default listen address is 127.0.0.1; Prometheus scrapes the pod IP.
    - name: TRIPLINE__HTTP__LISTEN_ADDR
      value: "0.0.0.0:{{ .Values.metrics.port }}"
    - name: TRIPLINE_LOG_FORMAT
      value: json
    {{- $s := .Values.outputs.existingSecret }}
    {{- include "tripline.secretEnv" (dict "env" "PAGERDUTY_ROUTING_KEY" "secret" $s "key" "pagerduty-routing-key") | nindent 4 }}
    {{- include "tripline.secretEnv" (dict "env" "SLACK_WEBHOOK_URL" "secret" $s "key" "slack-webhook-url") | nindent 4 }}
    {{- include "tripline.secretEnv" (dict "env" "WEBHOOK_URL" "secret" $s "key" "webhook-url") | nindent 4 }}
    {{- include "tripline.secretEnv" (dict "env" "WEBHOOK_SIGNING_SECRET" "secret" $s "key" "webhook-signing-secret") | nindent 4 }}
    {{- if .Values.kafka.sasl.enabled }}
    - name: KAFKA_PASSWORD
      valueFrom:
        secretKeyRef:
          name: {{ required "kafka.sasl.existingSecret is required with SASL" .Values.kafka.sasl.existingSecret }}
          key: {{ .Values.kafka.sasl.passwordKey }}
    {{- end }}
    {{- if .Values.api.enabled }}
    - name: TRIPLINE_API_TOKEN
      valueFrom:
        secretKeyRef:
          name: {{ required "api.existingSecret is required with the API" .Values.api.existingSecret }}
          key: {{ .Values.api.tokenKey }}
    {{- end }}
  resources:
    {{- toYaml .Values.resources | nindent 4 }}
  {{- if ne .Values.mode "sidecar" }}
  # Checkpoint restore can take a while. (Not in sidecar mode: a sidecar's
  # startup probe would hold back the gateway's start.)
  startupProbe:
    httpGet: {path: /healthz, port: metrics}
    periodSeconds: 2
    failureThreshold: 60
  {{- end }}
  livenessProbe:
    # Never depends on Kafka or the outputs.
    httpGet: {path: /healthz, port: metrics}
    initialDelaySeconds: {{ ternary 30 0 (eq .Values.mode "sidecar") }}
    periodSeconds: 10
    timeoutSeconds: 2
    failureThreshold: 3
  # No readinessProbe: in sidecar mode it would take the gateway out of its
  # Service when Kafka or an output is down. Health: TriplineNotReady/TriplineDown.
  securityContext:
    runAsNonRoot: true
    runAsUser: 10001
    runAsGroup: 10001
    readOnlyRootFilesystem: true
    allowPrivilegeEscalation: false
    capabilities: {drop: ["ALL"]}
  volumeMounts:
    - name: tripline-config
      mountPath: /etc/tripline
      readOnly: true
    - name: tripline-checkpoints
      mountPath: /var/lib/tripline
    {{- if .Values.kafka.tls.enabled }}
    - name: kafka-tls
      mountPath: /etc/tripline-kafka-tls
      readOnly: true
    {{- end }}
{{- end -}}

{{- define "tripline.volumes" -}}
- name: tripline-config
  projected:
    sources:
      - configMap:
          name: {{ .Release.Name }}-tripline-config
          items: [{key: config.toml, path: config.toml}]
      - configMap:
          name: {{ .Values.registry.existingConfigMap | default (printf "%s-tripline-config" .Release.Name) }}
          items: [{key: registry.toml, path: registry.toml}]
- name: tripline-checkpoints
  {{- if .Values.checkpoints.existingClaim }}
  persistentVolumeClaim:
    claimName: {{ .Values.checkpoints.existingClaim }}
  {{- else }}
  emptyDir:
    sizeLimit: {{ .Values.checkpoints.sizeLimit }}
  {{- end }}
{{- if .Values.kafka.tls.enabled }}
- name: kafka-tls
  secret:
    secretName: {{ required "kafka.tls.existingSecret is required with TLS" .Values.kafka.tls.existingSecret }}
{{- end }}
{{- end -}}

{{- define "tripline.podSecurity" -}}
terminationGracePeriodSeconds: {{ add .Values.shutdownDeadlineSeconds 5 }}
automountServiceAccountToken: false
securityContext:
  seccompProfile: {type: RuntimeDefault}
  fsGroup: 10001
{{- end -}}
