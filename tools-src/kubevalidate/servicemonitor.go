// monitoring.coreos.com/v1 ServiceMonitor is a CRD of the Prometheus
// Operator, not in k8s.io/api. Its shape is checked against the fields this
// project renders (a subset of the CRD's schema), strictly: an unknown or
// misspelt field is an error, as the operator's CRD would reject it.
package main

import (
	"fmt"
	"regexp"

	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	sigsjson "sigs.k8s.io/json"
)

const serviceMonitorAPIVersion = "monitoring.coreos.com/v1"

type serviceMonitor struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
	Spec       struct {
		JobLabel          string               `json:"jobLabel,omitempty"`
		Selector          metav1.LabelSelector `json:"selector"`
		NamespaceSelector *struct {
			Any        bool     `json:"any,omitempty"`
			MatchNames []string `json:"matchNames,omitempty"`
		} `json:"namespaceSelector,omitempty"`
		Endpoints []struct {
			Port          string `json:"port"`
			Path          string `json:"path,omitempty"`
			Scheme        string `json:"scheme,omitempty"`
			Interval      string `json:"interval,omitempty"`
			ScrapeTimeout string `json:"scrapeTimeout,omitempty"`
			HonorLabels   bool   `json:"honorLabels,omitempty"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// A Prometheus duration, as the CRD's pattern has it.
var promDuration = regexp.MustCompile(`^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$`)

func validateServiceMonitor(data []byte) []string {
	var sm serviceMonitor
	var p problems
	strict, err := sigsjson.UnmarshalStrict(data, &sm)
	if err != nil {
		return []string{err.Error()}
	}
	for _, e := range strict {
		p.add("%v", e)
	}
	p.addFieldErrors(apivalidation.ValidateObjectMeta(&sm.Metadata, true, apivalidation.NameIsDNSSubdomain, field.NewPath("metadata")))
	if len(sm.Spec.Selector.MatchLabels) == 0 && len(sm.Spec.Selector.MatchExpressions) == 0 {
		p.add("spec.selector: empty: it would scrape every Service of the namespace")
	}
	p.selector("spec.selector", &sm.Spec.Selector)
	if len(sm.Spec.Endpoints) == 0 {
		p.add("spec.endpoints: at least one")
	}
	for i, e := range sm.Spec.Endpoints {
		at := fmt.Sprintf("spec.endpoints[%d]", i)
		if e.Port == "" {
			p.add("%s.port: the Service port's name is required", at)
		} else {
			p.addAll(at+".port", validation.IsDNS1123Label(e.Port))
		}
		if e.Path != "" && e.Path[0] != '/' {
			p.add("%s.path: must start with /", at)
		}
		if e.Scheme != "" && e.Scheme != "http" && e.Scheme != "https" {
			p.add("%s.scheme: http or https", at)
		}
		for name, d := range map[string]string{"interval": e.Interval, "scrapeTimeout": e.ScrapeTimeout} {
			if d != "" && !promDuration.MatchString(d) {
				p.add("%s.%s: %q is not a Prometheus duration", at, name, d)
			}
		}
	}
	return p
}
