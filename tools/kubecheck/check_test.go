package main

import (
	"slices"
	"strings"
	"testing"
)

// valid is a Deployment, its Service, PodDisruptionBudget and Secret that fit together.
const valid = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
spec:
  replicas: 2
  selector:
    matchLabels: {app: a}
  template:
    metadata:
      labels: {app: a}
    spec:
      containers:
        - name: c
          image: img
          ports: [{name: http, containerPort: 8080}, {name: grpc, containerPort: 9090}]
          env:
            - name: K
              valueFrom: {secretKeyRef: {name: s, key: kek}}
          readinessProbe: {httpGet: {path: /readyz, port: http}}
          livenessProbe: {grpc: {port: 9090}}
          resources: {requests: {cpu: 100m, memory: 64Mi}, limits: {memory: 128Mi}}
---
apiVersion: v1
kind: Service
metadata:
  name: app
spec:
  selector: {app: a}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: app
spec:
  maxUnavailable: 1
  selector:
    matchLabels: {app: a}
---
apiVersion: v1
kind: Secret
metadata:
  name: s
stringData: {kek: x}
`

func TestCheck(t *testing.T) {
	tests := []struct {
		name, old, new string
		external       []string
		want           []string
	}{
		{name: "valid"},
		{name: "unknown field", old: "  replicas: 2", new: "  replica: 2",
			want: []string{`Deployment app: error unmarshaling JSON: while decoding JSON: json: unknown field "replica"`,
				"Service app: its selector matches no pods", "PodDisruptionBudget app: its selector matches no pods"}},
		{name: "wrong type", old: "replicas: 2", new: "replicas: two",
			want: []string{`Deployment app: error unmarshaling JSON: while decoding JSON: json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32`,
				"Service app: its selector matches no pods", "PodDisruptionBudget app: its selector matches no pods"}},
		{name: "unknown kind", old: "kind: Secret", new: "kind: Secrets", want: []string{"Secrets s: v1/Secrets is not a kind these manifests may use",
			"Deployment app container c: Secret s is not in the build"}},
		{name: "external secret", old: "kind: Secret\nmetadata:\n  name: s", new: "kind: Secret\nmetadata:\n  name: other",
			external: []string{"Secret/s"}},
		{name: "missing secret key", old: "key: kek", new: "key: kee", want: []string{"Deployment app container c: Secret s has no key kee"}},
		{name: "selector", old: "    matchLabels: {app: a}\n  template", new: "    matchLabels: {app: b}\n  template",
			want: []string{"Deployment app: spec.selector does not match the pod template's labels"}},
		{name: "probe port", old: "port: http}}", new: "port: metrics}}",
			want: []string{"Deployment app container c: readinessProbe: port metrics is not a container port"}},
		{name: "grpc probe port", old: "grpc: {port: 9090}", new: "grpc: {port: 9091}",
			want: []string{"Deployment app container c: livenessProbe: port 9091 is not a container port"}},
		{name: "no memory limit", old: ", limits: {memory: 128Mi}", want: []string{"Deployment app container c: no memory limit"}},
		{name: "service port", old: "targetPort: http", new: "targetPort: web",
			want: []string{"Service app: port http targets web, which its pods do not declare"}},
		{name: "service selector", old: "  selector: {app: a}\n  ports", new: "  selector: {app: x}\n  ports",
			want: []string{"Service app: its selector matches no pods"}},
		{name: "pdb selector", old: "  maxUnavailable: 1\n  selector:\n    matchLabels: {app: a}", new: "  maxUnavailable: 1\n  selector:\n    matchLabels: {app: z}",
			want: []string{"PodDisruptionBudget app: its selector matches no pods"}},
		{name: "bad name", old: "  name: app\nspec:\n  selector", new: "  name: App_1\nspec:\n  selector",
			want: []string{`Service "App_1": name: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stream := valid
			if tt.old != "" {
				if !strings.Contains(stream, tt.old) {
					t.Fatalf("the case's text %q is not in the manifests", tt.old)
				}
				stream = strings.Replace(stream, tt.old, tt.new, 1)
			}
			got, n, err := check([]byte(stream), tt.external)
			if err != nil || n != 4 || !slices.Equal(got, tt.want) {
				t.Errorf("check = %q, %d, %v\nwant %q", got, n, err, tt.want)
			}
		})
	}
}

// The repository's own manifests are valid; the base needs the Secret an overlay provides.
func TestDeployK8s(t *testing.T) {
	for dir, external := range map[string][]string{"../../deploy/k8s/overlays/example": nil, "../../deploy/k8s/base": {"Secret/hnsec-secrets"}} {
		problems, n, err := checkDir(dir, external)
		if err != nil || len(problems) > 0 || n < 19 {
			t.Errorf("%s: %q, %d objects, %v", dir, problems, n, err)
		}
	}
}
