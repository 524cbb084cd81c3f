package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const withDestination = minimal + `destinations:
  - name: linkedin
    auth: {access_token: t}
    mappings: [{name: m, conversion_rule: {id: 1}}]
`

var testKey = base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))

func TestSecretKey(t *testing.T) {
	cfg, err := Parse("c.yaml", []byte("server:\n  secret_key: ${KEY}\n"+withDestination), env(map[string]string{"KEY": testKey}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server.SecretKey.Value() != testKey || cfg.RequireSecretKey() != nil {
		t.Errorf("secret_key %q, RequireSecretKey %v; want the key and nil", cfg.Server.SecretKey, cfg.RequireSecretKey())
	}
	if strings.Contains(cfg.Server.SecretKey.String(), testKey[:8]) {
		t.Error("the key prints")
	}
	tests := []struct {
		name, text string
		want       []string
	}{
		{"not base64", "server:\n  secret_key: not-base64!\n" + minimal, []string{"c.yaml:2:15: server.secret_key: not base64 (illegal base64 data at input byte 3)"}},
		{"wrong length", "server:\n  secret_key: " + base64.StdEncoding.EncodeToString(make([]byte, 16)) + "\n" + minimal,
			[]string{"c.yaml:2:15: server.secret_key: wrong length: 16 bytes, the key is 32 random bytes in base64; generate one with `capstan secret-key new`"}},
		{"key and plaintext", "server:\n  secret_key: " + testKey + "\n  insecure_plaintext_secrets: true\n" + minimal,
			[]string{"c.yaml:3:31: server.insecure_plaintext_secrets: must not be true with server.secret_key"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("c.yaml", []byte(tt.text), env(nil))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%s", w, err)
				}
			}
			if strings.Contains(err.Error(), "not-base64") {
				t.Errorf("the error shows the key: %s", err)
			}
		})
	}
}

// TestRequireSecretKey: `capstan serve` with destinations refuses to start
// without a key or the explicit development setting.
func TestRequireSecretKey(t *testing.T) {
	tests := []struct {
		name, text string
		wantErr    bool
	}{
		{"no destinations", minimal, false},
		{"destinations without a key", "server:\n  addr: ':1'\n" + withDestination, true},
		{"destinations with a key", "server:\n  secret_key: " + testKey + "\n" + withDestination, false},
		{"destinations in development", "server:\n  insecure_plaintext_secrets: true\n" + withDestination, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse("c.yaml", []byte(tt.text), env(nil))
			if err != nil {
				t.Fatal(err)
			}
			err = cfg.RequireSecretKey()
			if (err != nil) != tt.wantErr {
				t.Fatalf("RequireSecretKey() = %v, want error %v", err, tt.wantErr)
			}
			if err == nil {
				return
			}
			if !IsConfigError(err) {
				t.Errorf("not a configuration error: %v", err)
			}
			for _, w := range []string{"c.yaml:2:3: server.secret_key: required with destinations", "capstan secret-key new", "head -c32 /dev/urandom | base64", "insecure_plaintext_secrets: true"} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q: %s", w, err)
				}
			}
		})
	}
}

// writeCert writes a self-signed certificate and its key for name into
// dir and returns their paths.
func writeCert(t testing.TB, dir, name string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func TestTLS(t *testing.T) {
	dir := t.TempDir()
	cert, key := writeCert(t, dir, "ingest.example.com")
	other, _ := writeCert(t, dir, "other.example.com")
	missing := filepath.Join(dir, "missing.pem")

	cfg, err := Parse("c.yaml", []byte("server:\n  data_dir: /var/lib/capstan\n  tls:\n    acme: {domains: [ingest.example.com], email: ops@example.com}\n"+minimal), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if a := cfg.Server.TLS.ACME; !cfg.Server.TLS.Enabled() || a.CacheDir != "/var/lib/capstan/acme" || a.Email != "ops@example.com" {
		t.Errorf("acme: %+v, want enabled with cache_dir data_dir/acme", a)
	}
	cfg, err = Parse("c.yaml", []byte("server:\n  tls: {cert_file: "+cert+", key_file: "+key+"}\n"+minimal), env(nil))
	if err != nil || !cfg.Server.TLS.Enabled() {
		t.Fatalf("cert files: %v", err)
	}
	if cfg, _ := Parse("c.yaml", []byte(minimal), env(nil)); cfg.Server.TLS.Enabled() {
		t.Error("TLS enabled by default")
	}

	tests := []struct {
		name, tls string
		want      []string
	}{
		{"cert without key", "cert_file: " + cert, []string{"c.yaml:4:5: server.tls.key_file: required with cert_file"}},
		{"key without cert", "key_file: " + key, []string{"c.yaml:4:5: server.tls.cert_file: required with key_file"}},
		{"unreadable files", "cert_file: " + missing + "\n    key_file: " + missing,
			[]string{"c.yaml:4:16: server.tls.cert_file: cannot read: open " + missing + ": no such file or directory",
				"c.yaml:5:15: server.tls.key_file: cannot read: open " + missing}},
		{"not a pair", "cert_file: " + other + "\n    key_file: " + key, []string{"c.yaml:4:5: server.tls: cert_file and key_file are not a PEM certificate and its key: tls: private key does not match public key"}},
		{"files and acme", "cert_file: " + cert + "\n    key_file: " + key + "\n    acme: {domains: [ingest.example.com]}",
			[]string{"c.yaml:6:11: server.tls.acme: set either cert_file and key_file or acme, not both"}},
		{"acme checks", "acme: {domains: ['*.example.com', 'https://x.example.com'], email: ops, directory_url: http://ca.example}",
			[]string{`server.tls.acme.domains[0]: must be a host name such as ingest.example.com (no wildcard, port or scheme), got "*.example.com"`,
				`server.tls.acme.domains[1]: must be a host name`, `server.tls.acme.email: must be an email address, got "ops"`,
				`server.tls.acme.directory_url: must be an https URL`}},
		{"acme without domains", "acme: {email: ops@example.com}", []string{"server.tls.acme.domains: at least one domain is required"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("c.yaml", []byte("server:\n  addr: ':443'\n  tls:\n    "+tt.tls+"\n"+minimal), env(nil))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%s", w, err)
				}
			}
		})
	}
}
