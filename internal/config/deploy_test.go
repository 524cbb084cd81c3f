package config

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestDeployConfigs parses the configurations shipped in deploy/ (the
// image's default, the compose setups and the Kubernetes ConfigMap) so that
// they stay valid as keys change. Variables they reference are set.
func TestDeployConfigs(t *testing.T) {
	vars := env(map[string]string{"WEBSITE_WRITE_KEY": "wk_website", "BACKEND_WRITE_KEY": "wk_backend"})
	files := map[string][]byte{}
	for _, name := range []string{"capstan.yaml", "capstan-compose.yaml", "cluster/capstan.yaml"} {
		b, err := os.ReadFile(filepath.Join("../../deploy", name))
		if err != nil {
			t.Fatal(err)
		}
		files[name] = b
	}
	// The Kubernetes manifest carries capstan's configuration in a ConfigMap.
	k8s, err := os.ReadFile("../../deploy/kubernetes/capstan.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for doc := range bytes.SplitSeq(k8s, []byte("\n---\n")) {
		var cm struct {
			Kind string            `yaml:"kind"`
			Data map[string]string `yaml:"data"`
		}
		if err := yaml.Unmarshal(doc, &cm); err != nil {
			t.Fatalf("deploy/kubernetes/capstan.yaml: %v", err)
		}
		if cm.Kind == "ConfigMap" {
			files["kubernetes/capstan.yaml ConfigMap"] = []byte(cm.Data["capstan.yaml"])
		}
	}
	for name, text := range files {
		cfg, err := Parse(name, text, vars)
		if err != nil {
			t.Errorf("deploy/%s: %v", name, err)
			continue
		}
		// The cluster setups run three-way replicated streams on three
		// nodes, each named in nats_url and monitor_url.
		if strings.HasPrefix(name, "cluster/") || strings.HasPrefix(name, "kubernetes/") {
			e := cfg.Engine
			if e.Replicas != 3 || strings.Count(e.NatsURL, ",") != 2 || strings.Count(e.MonitorURL, ",") != 2 {
				t.Errorf("deploy/%s: replicas %d, nats_url %q, monitor_url %q; want 3 nodes", name, e.Replicas, e.NatsURL, e.MonitorURL)
			}
		}
	}
	if len(files) != 4 {
		t.Errorf("checked %d configurations, want 4 (is the ConfigMap still in deploy/kubernetes/capstan.yaml?)", len(files))
	}
}
