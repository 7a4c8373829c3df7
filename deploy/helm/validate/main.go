// Command validate reads the YAML stream `helm template` printed (stdin) and decodes every object
// strictly into the typed Go structs of its kind: Kubernetes' own (k8s.io/api), the Prometheus
// operator's (monitoring.coreos.com/v1) and KEDA's (keda.sh/v1alpha1). A field the API does not
// have, a value of the wrong type, or a kind this program does not know is an error: offline,
// with the same structs the API servers and operators decode with. It prints one line per object
// and exits 1 on the first problem.
package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"

	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// named is what every object has: its name, checked as a DNS subdomain.
type named interface{ GetName() string }

func target(apiVersion, kind string) (named, error) {
	switch apiVersion + "/" + kind {
	case "apps/v1/StatefulSet":
		return &appsv1.StatefulSet{}, nil
	case "apps/v1/Deployment":
		return &appsv1.Deployment{}, nil
	case "v1/Service":
		return &corev1.Service{}, nil
	case "v1/ConfigMap":
		return &corev1.ConfigMap{}, nil
	case "v1/Secret":
		return &corev1.Secret{}, nil
	case "v1/PersistentVolumeClaim":
		return &corev1.PersistentVolumeClaim{}, nil
	case "policy/v1/PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}, nil
	case "monitoring.coreos.com/v1/ServiceMonitor":
		return &monitoringv1.ServiceMonitor{}, nil
	case "monitoring.coreos.com/v1/PrometheusRule":
		return &monitoringv1.PrometheusRule{}, nil
	case "keda.sh/v1alpha1/ScaledObject":
		return &kedav1alpha1.ScaledObject{}, nil
	}
	return nil, fmt.Errorf("unknown kind %s %s: add it to deploy/helm/validate/main.go", apiVersion, kind)
}

func check(doc []byte) (string, error) {
	var head struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := yaml.Unmarshal(doc, &head); err != nil {
		return "", err
	}
	obj, err := target(head.APIVersion, head.Kind)
	if err != nil {
		return "", err
	}
	if err := yaml.UnmarshalStrict(doc, obj); err != nil {
		return "", fmt.Errorf("%s: %w", head.Kind, err)
	}
	name := obj.GetName()
	if problems := validation.IsDNS1123Subdomain(name); len(problems) > 0 {
		return "", fmt.Errorf("%s %q: %s", head.Kind, name, strings.Join(problems, "; "))
	}
	if cm, ok := obj.(*corev1.ConfigMap); ok {
		size := 0
		for _, v := range cm.Data {
			size += len(v)
		}
		if size > corev1.MaxSecretSize { // a ConfigMap holds 1 MiB, like a Secret
			return "", fmt.Errorf("ConfigMap %q: %d bytes, more than 1 MiB", name, size)
		}
	}
	return head.Kind + " " + name, nil
}

func main() {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(os.Stdin))
	count := 0
	for {
		doc, err := reader.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "validate:", err)
			os.Exit(1)
		}
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		what, err := check(doc)
		if err != nil {
			fmt.Fprintln(os.Stderr, "validate:", err)
			os.Exit(1)
		}
		fmt.Println("valid:", what)
		count++
	}
	if count == 0 {
		fmt.Fprintln(os.Stderr, "validate: no object on stdin")
		os.Exit(1)
	}
}

// stripComments drops comment-only lines (helm template prints "# Source: ..." before each object).
func stripComments(doc []byte) []byte {
	var out bytes.Buffer
	for _, line := range bytes.Split(doc, []byte("\n")) {
		if !bytes.HasPrefix(bytes.TrimSpace(line), []byte("#")) {
			out.Write(line)
			out.WriteByte('\n')
		}
	}
	return out.Bytes()
}
