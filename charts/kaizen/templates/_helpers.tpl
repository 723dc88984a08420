{{/* Names, labels and the few decisions several templates share. */}}

{{- define "kaizen.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name: <release>-kaizen, or the release name when it already says kaizen. */}}
{{- define "kaizen.fullname" -}}
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

{{/* Labels of every object (no component: each object adds its own). */}}
{{- define "kaizen.commonLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "kaizen.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels of the operator's own objects. */}}
{{- define "kaizen.labels" -}}
{{ include "kaizen.commonLabels" . }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "kaizen.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kaizen.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "kaizen.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kaizen.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* repository:tag, or repository:tag@digest; the tag defaults to the chart's appVersion. */}}
{{- define "kaizen.imageRef" -}}
{{- $image := index . 0 }}
{{- $root := index . 1 }}
{{- $ref := printf "%s:%s" $image.repository (default $root.Chart.AppVersion $image.tag) }}
{{- if $image.digest }}{{ $ref = printf "%s@%s" $ref $image.digest }}{{ end }}
{{- $ref }}
{{- end }}

{{/* "true" when the replicas elect a leader with kopf peering, "" when one runs standalone. */}}
{{- define "kaizen.peering" -}}
{{- if or .Values.peering.enabled (gt (int .Values.replicaCount) 1) }}true{{ end }}
{{- end }}

{{- define "kaizen.peeringName" -}}
{{- default (include "kaizen.fullname" .) .Values.peering.name }}
{{- end }}

{{/* The claim every step Job mounts. */}}
{{- define "kaizen.artifactClaim" -}}
{{- default .Values.artifacts.name .Values.artifacts.existingClaim }}
{{- end }}

{{/* Namespaces the chart creates the artifact claim in, one per line. */}}
{{- define "kaizen.artifactNamespaces" -}}
{{- $namespaces := .Values.artifacts.namespaces | default .Values.watchNamespaces | default (list .Release.Namespace) }}
{{- range $namespaces }}
{{ . }}
{{- end }}
{{- end }}

{{/*
RBAC rules the operator needs in each namespace it watches. No wildcards: each rule names what
uses it. The same rules as manifests/rbac/cluster_role.yaml, which a test compares.
*/}}
{{- define "kaizen.namespacedRules" -}}
# The cycles: watched by kopf, annotated with its progress and diff-base (kaizen.dev/*) and
# its finalizer (the safety-net timer needs one). An ImprovementChain creates its next cycle
# and deletes finished ones beyond its history limits.
- apiGroups: [kaizen.dev]
  resources: [improvementcycles]
  verbs: [get, list, watch, patch, update, create, delete]
# Status is written as a merge patch of the whole status.
- apiGroups: [kaizen.dev]
  resources: [improvementcycles/status]
  verbs: [get, patch, update]
# Jobs carry ownerReferences with blockOwnerDeletion, which needs update on the owner's
# finalizers subresource (OwnerReferencesPermissionEnforcement).
- apiGroups: [kaizen.dev]
  resources: [improvementcycles/finalizers]
  verbs: [update]
# The chains: watched and annotated by kopf, with its finalizer (each chain's schedule daemon
# needs one); status is a merge patch; cycles and the lineage ConfigMap carry ownerReferences
# with blockOwnerDeletion to their chain (finalizers subresource).
- apiGroups: [kaizen.dev]
  resources: [improvementchains]
  verbs: [get, list, watch, patch, update]
- apiGroups: [kaizen.dev]
  resources: [improvementchains/status]
  verbs: [get, patch, update]
- apiGroups: [kaizen.dev]
  resources: [improvementchains/finalizers]
  verbs: [update]
# A chain's lineage artifact (lineage.json) lives in the ConfigMap <chain>-lineage.
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, create, patch]
# One Job per step; deleted when a cycle fails or is deleted (no GPU left running).
- apiGroups: [batch]
  resources: [jobs]
  verbs: [create, get, list, watch, delete, patch]
{{- if .Values.trainJob.enabled }}
# Train steps of cycles with training.backend: trainjob (Kubeflow Trainer v2), handled like Jobs.
- apiGroups: [trainer.kubeflow.org]
  resources: [trainjobs]
  verbs: [create, get, list, watch, delete]
{{- end }}
# Pods are read for their termination message (the step's summary).
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [pods/log]
  verbs: [get]
# Events about cycles, in both APIs.
- apiGroups: [""]
  resources: [events]
  verbs: [create, patch]
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create, patch]
{{- end }}
