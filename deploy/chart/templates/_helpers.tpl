{{- define "mlops.labels" -}}
app.kubernetes.io/part-of: mlops-assets
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}

{{/* Pod Security "restricted": a pod's securityContext for user `uid`. */}}
{{- define "mlops.podSecurity" -}}
runAsNonRoot: true
runAsUser: {{ . }}
runAsGroup: {{ . }}
fsGroup: {{ . }}
seccompProfile: {type: RuntimeDefault}
{{- end -}}

{{/* ... and every container's: no escalation, no capabilities, a read-only root. */}}
{{- define "mlops.containerSecurity" -}}
allowPrivilegeEscalation: false
capabilities: {drop: [ALL]}
readOnlyRootFilesystem: true
{{- end -}}

{{- define "mlops.pullSecrets" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets: {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{- define "mlops.storageClass" -}}
{{- with .Values.storageClassName }}
storageClassName: {{ . | quote }}
{{- end }}
{{- end -}}

{{/* The MLflow database URL, from the environment, never a command line (where `ps` shows it). */}}
{{- define "mlops.mlflowDatabase" -}}
- name: POSTGRES_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ .Values.secrets.mlflowPostgres }}, key: password}
- name: MLFLOW_BACKEND_STORE_URI
  value: "postgresql+psycopg2://mlflow:$(POSTGRES_PASSWORD)@mlflow-postgres:5432/mlflow"
{{- end -}}
