package main

import (
	"bytes"
	"fmt"
	"maps"
	"slices"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// kinds are the API types the manifests may use, by apiVersion and kind.
var kinds = map[string]func() any{
	"v1/Namespace":                  func() any { return &corev1.Namespace{} },
	"v1/ConfigMap":                  func() any { return &corev1.ConfigMap{} },
	"v1/Secret":                     func() any { return &corev1.Secret{} },
	"v1/Service":                    func() any { return &corev1.Service{} },
	"v1/ServiceAccount":             func() any { return &corev1.ServiceAccount{} },
	"apps/v1/Deployment":            func() any { return &appsv1.Deployment{} },
	"apps/v1/StatefulSet":           func() any { return &appsv1.StatefulSet{} },
	"policy/v1/PodDisruptionBudget": func() any { return &policyv1.PodDisruptionBudget{} },
}

// checkDir builds the kustomization in dir and checks it; it returns the problems found and how many
// objects the build has. err is a build that fails.
func checkDir(dir string, external []string) (problems []string, n int, err error) {
	res, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, 0, err
	}
	out, err := res.AsYaml()
	if err != nil {
		return nil, 0, err
	}
	return check(out, external)
}

// objects is a build decoded into API types.
type objects struct {
	deployments []*appsv1.Deployment
	services    []*corev1.Service
	pdbs        []*policyv1.PodDisruptionBudget
	configMaps  map[string]*corev1.ConfigMap
	secrets     map[string]*corev1.Secret
	external    []string
	problems    []string
}

func (o *objects) problem(format string, args ...any) {
	o.problems = append(o.problems, fmt.Sprintf(format, args...))
}

// check decodes a multi-document YAML stream strictly and checks the objects against each other.
func check(stream []byte, external []string) ([]string, int, error) {
	o := &objects{configMaps: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{}, external: external}
	n := 0
	for _, doc := range bytes.Split(stream, []byte("\n---\n")) {
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		n++
		var meta metav1.PartialObjectMetadata
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			return nil, 0, err
		}
		newObj, ok := kinds[meta.APIVersion+"/"+meta.Kind]
		if !ok {
			o.problem("%s %s: %s is not a kind these manifests may use", meta.Kind, meta.Name, meta.APIVersion+"/"+meta.Kind)
			continue
		}
		obj := newObj()
		if err := yaml.UnmarshalStrict(doc, obj); err != nil {
			o.problem("%s %s: %v", meta.Kind, meta.Name, err)
			continue
		}
		for _, msg := range validation.IsDNS1123Subdomain(meta.Name) {
			o.problem("%s %q: name: %s", meta.Kind, meta.Name, msg)
		}
		switch obj := obj.(type) {
		case *appsv1.Deployment:
			o.deployments = append(o.deployments, obj)
		case *appsv1.StatefulSet:
			o.checkPods("StatefulSet "+obj.Name, obj.Spec.Selector, obj.Spec.Template)
		case *corev1.Service:
			o.services = append(o.services, obj)
		case *policyv1.PodDisruptionBudget:
			o.pdbs = append(o.pdbs, obj)
		case *corev1.ConfigMap:
			o.configMaps[obj.Name] = obj
		case *corev1.Secret:
			o.secrets[obj.Name] = obj
		}
	}
	for _, d := range o.deployments {
		o.checkPods("Deployment "+d.Name, d.Spec.Selector, d.Spec.Template)
	}
	for _, s := range o.services {
		o.checkService(s)
	}
	for _, p := range o.pdbs {
		sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
		if err != nil || sel.Empty() || len(o.podsOf(sel)) == 0 {
			o.problem("PodDisruptionBudget %s: its selector matches no pods", p.Name)
		}
	}
	return o.problems, n, nil
}

// checkPods checks a workload's selector and pod template.
func (o *objects) checkPods(what string, selector *metav1.LabelSelector, t corev1.PodTemplateSpec) {
	sel, err := metav1.LabelSelectorAsSelector(selector)
	if err != nil || sel.Empty() || !sel.Matches(labels.Set(t.Labels)) {
		o.problem("%s: spec.selector does not match the pod template's labels", what)
	}
	volumes := map[string]bool{}
	for _, v := range t.Spec.Volumes {
		volumes[v.Name] = true
		switch {
		case v.Secret != nil:
			for _, item := range v.Secret.Items {
				o.ref(what, "Secret", v.Secret.SecretName, item.Key)
			}
			if len(v.Secret.Items) == 0 {
				o.ref(what, "Secret", v.Secret.SecretName, "")
			}
		case v.ConfigMap != nil:
			o.ref(what, "ConfigMap", v.ConfigMap.Name, "")
		}
	}
	for _, c := range t.Spec.Containers {
		cw := fmt.Sprintf("%s container %s", what, c.Name)
		if c.Image == "" {
			o.problem("%s: no image", cw)
		}
		for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			if _, ok := c.Resources.Requests[r]; !ok {
				o.problem("%s: no %s request", cw, r)
			}
		}
		if _, ok := c.Resources.Limits[corev1.ResourceMemory]; !ok {
			o.problem("%s: no memory limit", cw)
		}
		for name, p := range map[string]*corev1.Probe{"readinessProbe": c.ReadinessProbe, "livenessProbe": c.LivenessProbe, "startupProbe": c.StartupProbe} {
			switch {
			case p == nil && name != "startupProbe":
				o.problem("%s: no %s", cw, name)
			case p == nil:
			case p.HTTPGet != nil && !hasPort(c, p.HTTPGet.Port):
				o.problem("%s: %s: port %s is not a container port", cw, name, p.HTTPGet.Port.String())
			case p.GRPC != nil && !hasPort(c, intstr.FromInt32(p.GRPC.Port)):
				o.problem("%s: %s: port %d is not a container port", cw, name, p.GRPC.Port)
			}
		}
		for _, e := range c.EnvFrom {
			if e.ConfigMapRef != nil {
				o.ref(cw, "ConfigMap", e.ConfigMapRef.Name, "")
			}
			if e.SecretRef != nil {
				o.ref(cw, "Secret", e.SecretRef.Name, "")
			}
		}
		for _, e := range c.Env {
			if e.ValueFrom == nil {
				continue
			}
			if r := e.ValueFrom.SecretKeyRef; r != nil {
				o.ref(cw, "Secret", r.Name, r.Key)
			}
			if r := e.ValueFrom.ConfigMapKeyRef; r != nil {
				o.ref(cw, "ConfigMap", r.Name, r.Key)
			}
		}
		for _, m := range c.VolumeMounts {
			if !volumes[m.Name] {
				o.problem("%s: volume mount %s names no volume", cw, m.Name)
			}
		}
	}
}

// hasPort reports whether the container declares port (by name or number).
func hasPort(c corev1.Container, port intstr.IntOrString) bool {
	return slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool {
		if port.Type == intstr.String {
			return p.Name == port.StrVal
		}
		return p.ContainerPort == port.IntVal
	})
}

// ref checks that a referenced ConfigMap or Secret (and key, when given) is in the build or external.
func (o *objects) ref(what, kind, name, key string) {
	if slices.Contains(o.external, kind+"/"+name) {
		return
	}
	keys, ok := o.keysOf(kind, name)
	switch {
	case !ok:
		o.problem("%s: %s %s is not in the build", what, kind, name)
	case key != "" && !slices.Contains(keys, key):
		o.problem("%s: %s %s has no key %s", what, kind, name, key)
	}
}

// keysOf returns the keys of the ConfigMap or Secret called name, and whether the build has it.
func (o *objects) keysOf(kind, name string) ([]string, bool) {
	if kind == "ConfigMap" {
		if c, ok := o.configMaps[name]; ok {
			return slices.Collect(maps.Keys(c.Data)), true
		}
		return nil, false
	}
	if s, ok := o.secrets[name]; ok {
		return slices.Concat(slices.Collect(maps.Keys(s.Data)), slices.Collect(maps.Keys(s.StringData))), true
	}
	return nil, false
}

// podsOf returns the pod templates sel selects.
func (o *objects) podsOf(sel labels.Selector) []corev1.PodTemplateSpec {
	var pods []corev1.PodTemplateSpec
	for _, d := range o.deployments {
		if sel.Matches(labels.Set(d.Spec.Template.Labels)) {
			pods = append(pods, d.Spec.Template)
		}
	}
	return pods
}

// checkService checks that a Service selects pods and targets ports they declare.
func (o *objects) checkService(s *corev1.Service) {
	if len(s.Spec.Selector) == 0 {
		return // endpoints managed elsewhere
	}
	pods := o.podsOf(labels.SelectorFromSet(s.Spec.Selector))
	if len(pods) == 0 {
		o.problem("Service %s: its selector matches no pods", s.Name)
		return
	}
	for _, p := range s.Spec.Ports {
		target := p.TargetPort
		if target.Type == intstr.Int && target.IntVal == 0 {
			target = intstr.FromInt32(p.Port)
		}
		for _, pod := range pods {
			if !slices.ContainsFunc(pod.Spec.Containers, func(c corev1.Container) bool { return hasPort(c, target) }) {
				o.problem("Service %s: port %s targets %s, which its pods do not declare", s.Name, p.Name, target.String())
			}
		}
	}
}
