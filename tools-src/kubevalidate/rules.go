// The rules the API server enforces beyond what a strictly decoded type
// carries, for the kinds the chart renders. Not all of them: the ones a chart
// can get wrong (names, selectors, ports, probes, env, mounts, bounds).
package main

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

type problems []string

func (p *problems) add(format string, args ...any) { *p = append(*p, fmt.Sprintf(format, args...)) }

func (p *problems) addAll(prefix string, messages []string) {
	for _, m := range messages {
		p.add("%s: %s", prefix, m)
	}
}

func (p *problems) addFieldErrors(errs field.ErrorList) {
	for _, e := range errs {
		p.add("%s", e.Error())
	}
}

func validateObject(obj runtime.Object) []string {
	var p problems
	switch o := obj.(type) {
	case *appsv1.Deployment:
		p.objectMeta(&o.ObjectMeta, apivalidation.NameIsDNSSubdomain)
		if o.Spec.Replicas != nil && *o.Spec.Replicas < 0 {
			p.add("spec.replicas: must not be negative")
		}
		p.selectorMatches("spec.selector", o.Spec.Selector, o.Spec.Template.Labels)
		p.podSpec("spec.template.spec", &o.Spec.Template.Spec, false)
	case *batchv1.Job:
		p.objectMeta(&o.ObjectMeta, apivalidation.NameIsDNSSubdomain)
		if rp := o.Spec.Template.Spec.RestartPolicy; rp != corev1.RestartPolicyNever && rp != corev1.RestartPolicyOnFailure {
			p.add("spec.template.spec.restartPolicy: a Job needs Never or OnFailure, not %q", rp)
		}
		if o.Spec.Selector != nil {
			p.add("spec.selector: leave it to the Job controller")
		}
		p.podSpec("spec.template.spec", &o.Spec.Template.Spec, true)
	case *corev1.Service:
		p.objectMeta(&o.ObjectMeta, apivalidation.NameIsDNS1035Label)
		p.service(o)
	case *corev1.ConfigMap:
		p.objectMeta(&o.ObjectMeta, apivalidation.NameIsDNSSubdomain)
		for key := range o.Data {
			p.addAll("data["+key+"]", validation.IsConfigMapKey(key))
			if _, dup := o.BinaryData[key]; dup {
				p.add("data[%s]: also in binaryData", key)
			}
		}
	case *corev1.Secret:
		p.objectMeta(&o.ObjectMeta, apivalidation.NameIsDNSSubdomain)
		for key := range o.Data {
			p.addAll("data["+key+"]", validation.IsConfigMapKey(key))
		}
		for key := range o.StringData {
			p.addAll("stringData["+key+"]", validation.IsConfigMapKey(key))
		}
	case *corev1.ServiceAccount:
		p.objectMeta(&o.ObjectMeta, apivalidation.NameIsDNSSubdomain)
	case *networkingv1.NetworkPolicy:
		p.objectMeta(&o.ObjectMeta, apivalidation.NameIsDNSSubdomain)
		p.selector("spec.podSelector", &o.Spec.PodSelector)
		for i, rule := range o.Spec.Ingress {
			p.policyRule(fmt.Sprintf("spec.ingress[%d]", i), rule.From, rule.Ports)
		}
		for i, rule := range o.Spec.Egress {
			p.policyRule(fmt.Sprintf("spec.egress[%d]", i), rule.To, rule.Ports)
		}
		for _, t := range o.Spec.PolicyTypes {
			if t != networkingv1.PolicyTypeIngress && t != networkingv1.PolicyTypeEgress {
				p.add("spec.policyTypes: unknown %q", t)
			}
		}
	case *policyv1.PodDisruptionBudget:
		p.objectMeta(&o.ObjectMeta, apivalidation.NameIsDNSSubdomain)
		if (o.Spec.MinAvailable == nil) == (o.Spec.MaxUnavailable == nil) {
			p.add("spec: exactly one of minAvailable and maxUnavailable")
		}
		p.intOrPercent("spec.minAvailable", o.Spec.MinAvailable)
		p.intOrPercent("spec.maxUnavailable", o.Spec.MaxUnavailable)
		if o.Spec.Selector == nil {
			p.add("spec.selector: required (in policy/v1 an empty selector selects every pod of the namespace)")
		} else {
			p.selector("spec.selector", o.Spec.Selector)
		}
	case *autoscalingv2.HorizontalPodAutoscaler:
		p.objectMeta(&o.ObjectMeta, apivalidation.NameIsDNSSubdomain)
		ref := o.Spec.ScaleTargetRef
		if ref.Kind == "" || ref.Name == "" {
			p.add("spec.scaleTargetRef: kind and name are required")
		}
		if o.Spec.MinReplicas != nil && *o.Spec.MinReplicas < 1 {
			p.add("spec.minReplicas: at least 1")
		}
		if o.Spec.MaxReplicas < 1 || (o.Spec.MinReplicas != nil && *o.Spec.MinReplicas > o.Spec.MaxReplicas) {
			p.add("spec.maxReplicas: at least 1 and at least minReplicas")
		}
		for i, m := range o.Spec.Metrics {
			if m.Type == autoscalingv2.ResourceMetricSourceType && (m.Resource == nil || m.Resource.Name == "") {
				p.add("spec.metrics[%d].resource: required for type Resource", i)
			}
		}
	case *rbacv1.Role, *rbacv1.RoleBinding:
		// Decoded strictly; nothing more the chart could get wrong here.
	default:
		p.add("the validator has no rules for %T", obj)
	}
	return p
}

func (p *problems) objectMeta(meta *metav1.ObjectMeta, name apivalidation.ValidateNameFunc) {
	p.addFieldErrors(apivalidation.ValidateObjectMeta(meta, true, name, field.NewPath("metadata")))
}

func (p *problems) selector(path string, s *metav1.LabelSelector) labels.Selector {
	sel, err := metav1.LabelSelectorAsSelector(s)
	if err != nil {
		p.add("%s: %v", path, err)
		return nil
	}
	return sel
}

func (p *problems) selectorMatches(path string, s *metav1.LabelSelector, podLabels map[string]string) {
	if s == nil || (len(s.MatchLabels) == 0 && len(s.MatchExpressions) == 0) {
		p.add("%s: required and not empty", path)
		return
	}
	if sel := p.selector(path, s); sel != nil && !sel.Matches(labels.Set(podLabels)) {
		p.add("%s: does not match the pod template's labels %v", path, podLabels)
	}
}

func (p *problems) intOrPercent(path string, v *intstr.IntOrString) {
	if v == nil {
		return
	}
	if v.Type == intstr.String {
		if _, err := intstr.GetScaledValueFromIntOrPercent(v, 100, true); err != nil {
			p.add("%s: %v", path, err)
		}
	} else if v.IntVal < 0 {
		p.add("%s: must not be negative", path)
	}
}

func (p *problems) policyRule(path string, peers []networkingv1.NetworkPolicyPeer, ports []networkingv1.NetworkPolicyPort) {
	for i, peer := range peers {
		at := fmt.Sprintf("%s.peers[%d]", path, i)
		n := 0
		if peer.PodSelector != nil || peer.NamespaceSelector != nil {
			n++
		}
		if peer.IPBlock != nil {
			n++
		}
		if n != 1 {
			p.add("%s: exactly one of ipBlock and pod/namespace selectors", at)
		}
		if peer.PodSelector != nil {
			p.selector(at+".podSelector", peer.PodSelector)
		}
		if peer.NamespaceSelector != nil {
			p.selector(at+".namespaceSelector", peer.NamespaceSelector)
		}
	}
	for i, port := range ports {
		at := fmt.Sprintf("%s.ports[%d]", path, i)
		if port.Protocol != nil && *port.Protocol != corev1.ProtocolTCP && *port.Protocol != corev1.ProtocolUDP && *port.Protocol != corev1.ProtocolSCTP {
			p.add("%s.protocol: unknown %q", at, *port.Protocol)
		}
		if port.Port != nil {
			p.portRef(at+".port", *port.Port)
		}
	}
}

func (p *problems) portRef(path string, port intstr.IntOrString) {
	if port.Type == intstr.String {
		p.addAll(path, validation.IsValidPortName(port.StrVal))
	} else {
		p.addAll(path, validation.IsValidPortNum(int(port.IntVal)))
	}
}

func (p *problems) service(s *corev1.Service) {
	headless := s.Spec.ClusterIP == corev1.ClusterIPNone
	if len(s.Spec.Ports) == 0 && !headless {
		p.add("spec.ports: required unless the Service is headless")
	}
	names := map[string]bool{}
	for i, port := range s.Spec.Ports {
		at := fmt.Sprintf("spec.ports[%d]", i)
		if len(s.Spec.Ports) > 1 && port.Name == "" {
			p.add("%s.name: required when a Service has several ports", at)
		}
		if port.Name != "" {
			p.addAll(at+".name", validation.IsDNS1123Label(port.Name))
			if names[port.Name] {
				p.add("%s.name: %q used twice", at, port.Name)
			}
			names[port.Name] = true
		}
		p.addAll(at+".port", validation.IsValidPortNum(int(port.Port)))
		if port.TargetPort.Type == intstr.String || port.TargetPort.IntVal != 0 {
			p.portRef(at+".targetPort", port.TargetPort)
		}
		if port.NodePort != 0 && s.Spec.Type != corev1.ServiceTypeNodePort && s.Spec.Type != corev1.ServiceTypeLoadBalancer {
			p.add("%s.nodePort: only for NodePort and LoadBalancer Services", at)
		}
	}
	switch s.Spec.Type {
	case "", corev1.ServiceTypeClusterIP, corev1.ServiceTypeNodePort, corev1.ServiceTypeLoadBalancer:
	default:
		p.add("spec.type: %q is not one the chart should render", s.Spec.Type)
	}
	if headless && s.Spec.Type != "" && s.Spec.Type != corev1.ServiceTypeClusterIP {
		p.add("spec.clusterIP: None needs type ClusterIP")
	}
	if len(s.Spec.Selector) > 0 {
		p.addFieldErrors(validateLabelMap(s.Spec.Selector, field.NewPath("spec", "selector")))
	}
}

func validateLabelMap(m map[string]string, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	for k, v := range m {
		for _, msg := range validation.IsQualifiedName(k) {
			errs = append(errs, field.Invalid(path, k, msg))
		}
		for _, msg := range validation.IsValidLabelValue(v) {
			errs = append(errs, field.Invalid(path.Key(k), v, msg))
		}
	}
	return errs
}

func (p *problems) podSpec(path string, spec *corev1.PodSpec, job bool) {
	if len(spec.Containers) == 0 {
		p.add("%s.containers: at least one", path)
	}
	volumes := map[string]bool{}
	for i, v := range spec.Volumes {
		at := fmt.Sprintf("%s.volumes[%d]", path, i)
		p.addAll(at+".name", validation.IsDNS1123Label(v.Name))
		if volumes[v.Name] {
			p.add("%s.name: %q used twice", at, v.Name)
		}
		volumes[v.Name] = true
		if countVolumeSources(v.VolumeSource) != 1 {
			p.add("%s: exactly one volume source", at)
		}
		if v.ConfigMap != nil && v.ConfigMap.Name == "" {
			p.add("%s.configMap.name: required", at)
		}
	}
	names := map[string]bool{}
	portNames := map[string]bool{}
	check := func(kind string, i int, c *corev1.Container, init bool) {
		at := fmt.Sprintf("%s.%s[%d]", path, kind, i)
		p.addAll(at+".name", validation.IsDNS1123Label(c.Name))
		if names[c.Name] {
			p.add("%s.name: %q used twice in the pod", at, c.Name)
		}
		names[c.Name] = true
		if c.Image == "" {
			p.add("%s.image: required", at)
		}
		own := map[string]bool{}
		for j, port := range c.Ports {
			pat := fmt.Sprintf("%s.ports[%d]", at, j)
			p.addAll(pat+".containerPort", validation.IsValidPortNum(int(port.ContainerPort)))
			if port.Name != "" {
				p.addAll(pat+".name", validation.IsValidPortName(port.Name))
				if portNames[port.Name] {
					p.add("%s.name: %q used twice in the pod", pat, port.Name)
				}
				portNames[port.Name] = true
				own[port.Name] = true
			}
		}
		for j, e := range c.Env {
			eat := fmt.Sprintf("%s.env[%d]", at, j)
			p.addAll(eat+".name", validation.IsEnvVarName(e.Name))
			if e.ValueFrom != nil {
				if e.Value != "" {
					p.add("%s: value and valueFrom are exclusive", eat)
				}
				n := 0
				if r := e.ValueFrom.SecretKeyRef; r != nil {
					n++
					p.addAll(eat+".valueFrom.secretKeyRef.name", validation.IsDNS1123Subdomain(r.Name))
					p.addAll(eat+".valueFrom.secretKeyRef.key", validation.IsConfigMapKey(r.Key))
				}
				if r := e.ValueFrom.ConfigMapKeyRef; r != nil {
					n++
					p.addAll(eat+".valueFrom.configMapKeyRef.name", validation.IsDNS1123Subdomain(r.Name))
					p.addAll(eat+".valueFrom.configMapKeyRef.key", validation.IsConfigMapKey(r.Key))
				}
				if e.ValueFrom.FieldRef != nil {
					n++
				}
				if e.ValueFrom.ResourceFieldRef != nil {
					n++
				}
				if n != 1 {
					p.add("%s.valueFrom: exactly one source", eat)
				}
			}
		}
		mounts := map[string]bool{}
		for j, m := range c.VolumeMounts {
			mat := fmt.Sprintf("%s.volumeMounts[%d]", at, j)
			if !volumes[m.Name] {
				p.add("%s.name: no volume %q in the pod", mat, m.Name)
			}
			if m.MountPath == "" || m.MountPath[0] != '/' {
				p.add("%s.mountPath: an absolute path", mat)
			}
			if mounts[m.MountPath] {
				p.add("%s.mountPath: %q mounted twice", mat, m.MountPath)
			}
			mounts[m.MountPath] = true
		}
		p.probe(at+".readinessProbe", c.ReadinessProbe, own, false)
		p.probe(at+".livenessProbe", c.LivenessProbe, own, true)
		p.probe(at+".startupProbe", c.StartupProbe, own, true)
		if c.Lifecycle != nil {
			p.handler(at+".lifecycle.preStop", c.Lifecycle.PreStop, own)
			p.handler(at+".lifecycle.postStart", c.Lifecycle.PostStart, own)
		}
		for name, limit := range c.Resources.Limits {
			if request, ok := c.Resources.Requests[name]; ok && request.Cmp(limit) > 0 {
				p.add("%s.resources: the %s request %s exceeds its limit %s", at, name, request.String(), limit.String())
			}
		}
		if init {
			if c.RestartPolicy != nil && *c.RestartPolicy != corev1.ContainerRestartPolicyAlways {
				p.add("%s.restartPolicy: only Always is allowed (a sidecar)", at)
			}
			sidecar := c.RestartPolicy != nil
			if !sidecar && (c.ReadinessProbe != nil || c.LivenessProbe != nil || c.StartupProbe != nil || c.Lifecycle != nil) {
				p.add("%s: probes and lifecycle hooks need restartPolicy: Always (a sidecar)", at)
			}
		} else if c.RestartPolicy != nil {
			p.add("%s.restartPolicy: only init containers have one", at)
		}
	}
	for i := range spec.InitContainers {
		check("initContainers", i, &spec.InitContainers[i], true)
	}
	for i := range spec.Containers {
		check("containers", i, &spec.Containers[i], false)
	}
	if spec.TerminationGracePeriodSeconds != nil && *spec.TerminationGracePeriodSeconds < 0 {
		p.add("%s.terminationGracePeriodSeconds: must not be negative", path)
	}
	if spec.ServiceAccountName != "" {
		p.addAll(path+".serviceAccountName", validation.IsDNS1123Subdomain(spec.ServiceAccountName))
	}
	if !job && spec.RestartPolicy != "" && spec.RestartPolicy != corev1.RestartPolicyAlways {
		p.add("%s.restartPolicy: a Deployment's pods need Always", path)
	}
}

// probe checks one handler per probe and that a named port is one of the container's own.
// Liveness and startup probes must have successThreshold 1 (once).
func (p *problems) probe(path string, probe *corev1.Probe, own map[string]bool, once bool) {
	if probe == nil {
		return
	}
	p.handler(path, &corev1.LifecycleHandler{Exec: probe.Exec, HTTPGet: probe.HTTPGet, TCPSocket: probe.TCPSocket}, own)
	n := 0
	for _, set := range []bool{probe.Exec != nil, probe.HTTPGet != nil, probe.TCPSocket != nil, probe.GRPC != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		p.add("%s: exactly one of exec, httpGet, tcpSocket and grpc", path)
	}
	if probe.GRPC != nil {
		p.addAll(path+".grpc.port", validation.IsValidPortNum(int(probe.GRPC.Port)))
	}
	if once && probe.SuccessThreshold > 1 {
		p.add("%s.successThreshold: must be 1", path)
	}
}

func (p *problems) handler(path string, h *corev1.LifecycleHandler, own map[string]bool) {
	if h == nil {
		return
	}
	named := func(at string, port intstr.IntOrString) {
		if port.Type == intstr.String {
			p.addAll(at, validation.IsValidPortName(port.StrVal))
			if !own[port.StrVal] {
				p.add("%s: the container has no port named %q", at, port.StrVal)
			}
		} else {
			p.addAll(at, validation.IsValidPortNum(int(port.IntVal)))
		}
	}
	if h.HTTPGet != nil {
		named(path+".httpGet.port", h.HTTPGet.Port)
		if h.HTTPGet.Path != "" && h.HTTPGet.Path[0] != '/' {
			p.add("%s.httpGet.path: must start with /", path)
		}
	}
	if h.TCPSocket != nil {
		named(path+".tcpSocket.port", h.TCPSocket.Port)
	}
	if h.Sleep != nil && h.Sleep.Seconds < 0 {
		p.add("%s.sleep.seconds: must not be negative", path)
	}
}

func countVolumeSources(v corev1.VolumeSource) int {
	n := 0
	for _, set := range []bool{
		v.EmptyDir != nil, v.ConfigMap != nil, v.Secret != nil, v.Projected != nil, v.PersistentVolumeClaim != nil,
		v.HostPath != nil, v.DownwardAPI != nil, v.CSI != nil, v.Ephemeral != nil,
	} {
		if set {
			n++
		}
	}
	return n
}
