// kubevalidate checks rendered Kubernetes manifests (a multi-document YAML
// stream, such as `helm template` prints) without a cluster and without a
// network:
//
//   - every document decodes strictly into the Kubernetes 1.30 API type of its
//     apiVersion and kind (k8s.io/api v0.30, the API server's own strict
//     decoder): an unknown or misspelt field, a duplicate key, a wrong type, an
//     unparsable quantity or an apiVersion 1.30 does not serve is an error;
//   - the rules the API server would enforce that the types alone cannot
//     carry: names, labels and annotations, selectors that match their pod
//     template, container and port names, probe handlers, env sources, volume
//     mounts, requests within limits, a PodDisruptionBudget's single bound, a
//     HorizontalPodAutoscaler's range, a Job's restart policy;
//   - monitoring.coreos.com/v1 ServiceMonitor, a CRD k8s.io/api does not
//     carry, against a struct of the fields this project uses, strictly.
//
// Usage: kubevalidate [--json] < rendered.yaml
//
//	kubevalidate --yaml-to-json < values.yaml
//
// Prints one line per object ("ok apps/v1 Deployment shop/orders"), or with
// --json the documents as a JSON array (what the tests assert on). Problems
// go to stderr, one per line; the exit status is 1 when there was any.
// --yaml-to-json prints one YAML document (a values file) as JSON.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// A rendered document as the tests see it.
type document struct {
	APIVersion string          `json:"apiVersion"`
	Kind       string          `json:"kind"`
	Namespace  string          `json:"namespace,omitempty"`
	Name       string          `json:"name"`
	Object     json.RawMessage `json:"object"`
	// What is wrong with it; empty when it is valid.
	Problems []string `json:"problems,omitempty"`
}

func newScheme() *runtime.Scheme {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		corev1.AddToScheme, appsv1.AddToScheme, batchv1.AddToScheme, networkingv1.AddToScheme,
		policyv1.AddToScheme, autoscalingv2.AddToScheme, rbacv1.AddToScheme,
	} {
		if err := add(scheme); err != nil {
			panic(err)
		}
	}
	return scheme
}

func main() {
	asJSON := false
	for _, arg := range os.Args[1:] {
		switch arg {
		case "--json":
			asJSON = true
		case "--yaml-to-json":
			os.Exit(yamlToJSON(os.Stdin, os.Stdout))
		default:
			fmt.Fprintf(os.Stderr, "usage: kubevalidate [--json] < manifests.yaml | kubevalidate --yaml-to-json < file.yaml\n")
			os.Exit(2)
		}
	}
	docs, problems := validateStream(os.Stdin)
	for _, p := range problems {
		fmt.Fprintln(os.Stderr, p)
	}
	if asJSON {
		out, err := json.Marshal(docs)
		if err != nil {
			panic(err)
		}
		os.Stdout.Write(append(out, '\n'))
	} else {
		for _, d := range docs {
			verdict := "ok"
			if len(d.Problems) > 0 {
				verdict = "invalid"
			}
			fmt.Printf("%s %s %s %s/%s\n", verdict, d.APIVersion, d.Kind, d.Namespace, d.Name)
		}
	}
	if len(problems) > 0 {
		os.Exit(1)
	}
}

func validateStream(r io.Reader) ([]document, []string) {
	decoder := serializer.NewCodecFactory(newScheme(), serializer.EnableStrict).UniversalDeserializer()
	reader := utilyaml.NewYAMLReader(bufio.NewReader(r))
	docs := []document{}
	problems := []string{}
	seen := map[string]bool{}
	for index := 1; ; index++ {
		raw, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			problems = append(problems, fmt.Sprintf("document %d: %v", index, err))
			break
		}
		if len(bytes.TrimSpace(stripComments(raw))) == 0 {
			continue
		}
		data, err := yaml.YAMLToJSONStrict(raw)
		if err != nil {
			problems = append(problems, fmt.Sprintf("document %d: not valid YAML: %v", index, err))
			continue
		}
		if string(data) == "null" {
			continue
		}
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name      string `json:"name"`
				Namespace string `json:"namespace"`
			} `json:"metadata"`
		}
		if err := json.Unmarshal(data, &head); err != nil {
			problems = append(problems, fmt.Sprintf("document %d: not an object: %v", index, err))
			continue
		}
		label := fmt.Sprintf("%s %s %s", head.APIVersion, head.Kind, head.Metadata.Name)
		key := fmt.Sprintf("%s/%s/%s", groupOf(head.APIVersion), head.Kind, head.Metadata.Name)
		var errs []string
		if head.APIVersion == serviceMonitorAPIVersion && head.Kind == "ServiceMonitor" {
			errs = validateServiceMonitor(data)
		} else {
			obj, _, err := decoder.Decode(data, nil, nil)
			switch {
			case err != nil && runtime.IsNotRegisteredError(err):
				errs = []string{fmt.Sprintf("%s %s is not a kind Kubernetes 1.30 serves (nor the ServiceMonitor CRD)", head.APIVersion, head.Kind)}
			case err != nil:
				errs = []string{err.Error()}
			default:
				errs = validateObject(obj)
			}
		}
		if seen[key] {
			errs = append(errs, "rendered twice")
		}
		seen[key] = true
		for _, e := range errs {
			problems = append(problems, fmt.Sprintf("%s: %s", label, e))
		}
		docs = append(docs, document{APIVersion: head.APIVersion, Kind: head.Kind, Namespace: head.Metadata.Namespace, Name: head.Metadata.Name, Object: data, Problems: errs})
	}
	return docs, problems
}

func groupOf(apiVersion string) string {
	if i := strings.Index(apiVersion, "/"); i >= 0 {
		return apiVersion[:i]
	}
	return ""
}

// stripComments drops whole-line comments, so a document that holds only the
// "# Source: ..." line helm prints for an empty template counts as empty.
func stripComments(raw []byte) []byte {
	var out bytes.Buffer
	for _, line := range bytes.Split(raw, []byte("\n")) {
		if bytes.HasPrefix(bytes.TrimSpace(line), []byte("#")) {
			continue
		}
		out.Write(line)
		out.WriteByte('\n')
	}
	return out.Bytes()
}

func yamlToJSON(r io.Reader, w io.Writer) int {
	raw, err := io.ReadAll(r)
	if err == nil {
		raw, err = yaml.YAMLToJSONStrict(raw)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "kubevalidate: %v\n", err)
		return 1
	}
	w.Write(append(raw, '\n'))
	return 0
}
