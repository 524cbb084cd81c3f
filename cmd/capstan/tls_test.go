package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/acme/autocert"

	"github.com/capstan-gw/capstan/internal/config"
)

// testCert is a self-signed certificate for 127.0.0.1 named cn, written as
// PEM files.
type testCert struct {
	cn, certFile, keyFile string
	pool                  *x509.CertPool // trusts only this certificate
	certPEM, keyPEM       []byte
}

func makeCert(t testing.TB, dir, cn string) testCert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	c := testCert{cn: cn, certFile: filepath.Join(dir, cn+".crt"), keyFile: filepath.Join(dir, cn+".key"), pool: x509.NewCertPool(),
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})}
	c.pool.AddCert(leaf)
	c.install(t, c.certFile, c.keyFile)
	return c
}

// install writes the certificate and key to the given paths.
func (c testCert) install(t testing.TB, certFile, keyFile string) {
	t.Helper()
	if err := os.WriteFile(certFile, c.certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, c.keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
}

// get fetches url on a new connection trusting only pool and returns the
// status and the server certificate's common name.
func get(url string, pool *x509.CertPool) (int, string, error) {
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool}, DisableKeepAlives: true}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.TLS.PeerCertificates[0].Subject.CommonName, nil
}

func TestCertReloader(t *testing.T) {
	dir := t.TempDir()
	a, b := makeCert(t, dir, "first"), makeCert(t, dir, "second")
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	a.install(t, certFile, keyFile)
	var logs bytes.Buffer
	r, err := newCertReloader(certFile, keyFile, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	cn := func() string {
		c, _ := r.GetCertificate(nil)
		return c.Leaf.Subject.CommonName
	}
	if cn() != "first" {
		t.Fatalf("certificate %q, want first", cn())
	}
	b.install(t, certFile, keyFile)
	if err := r.Reload(); err != nil || cn() != "second" {
		t.Fatalf("after Reload: %q, %v; want second", cn(), err)
	}
	if err := os.WriteFile(certFile, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := r.Reload(); err == nil || cn() != "second" {
		t.Errorf("a broken file: Reload %v, certificate %q; want an error and second kept", err, cn())
	}
	for _, w := range []string{"TLS certificate reloaded", "CN=second", "TLS certificate not reloaded; the previous one stays in use"} {
		if !strings.Contains(logs.String(), w) {
			t.Errorf("logs lack %q:\n%s", w, logs.String())
		}
	}
}

// eventually polls ok until it returns true or within has passed, and
// reports whether it did.
func eventually(within time.Duration, ok func() bool) bool {
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// TestServeTLS runs serve over HTTPS with a certificate from files: a
// client trusting it gets /healthz; SIGHUP swaps in a second certificate
// that new connections see; the capstan_lfi cookie is Secure.
func TestServeTLS(t *testing.T) {
	dir := t.TempDir()
	a, b := makeCert(t, dir, "first"), makeCert(t, dir, "second")
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	a.install(t, certFile, keyFile)
	text := "server:\n  addr: 127.0.0.1:0\n  data_dir: " + filepath.Join(dir, "data") + "\n  tls:\n    cert_file: " + certFile + "\n    key_file: " + keyFile + `
engine: {listen: none}
sources:
  - name: website
    write_key: wk_1
    allowed_origins: ["https://www.example.com"]
`
	cfg, err := config.Parse("tls.yaml", []byte(text), os.LookupEnv)
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, "", slog.New(slog.NewTextHandler(&logs, nil)), nil) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	addrRe := regexp.MustCompile(`capstan listening" addr=(https://\S+)`)
	var base string
	if !eventually(20*time.Second, func() bool {
		if m := addrRe.FindStringSubmatch(logs.String()); m != nil {
			base = m[1]
		}
		return base != ""
	}) {
		t.Fatalf("serve did not say it listens on https:\n%s", logs.String())
	}
	if status, cn, err := get(base+"/healthz", a.pool); err != nil || status != 200 || cn != "first" {
		t.Fatalf("GET /healthz: %d %q %v; want 200 from the first certificate", status, cn, err)
	}

	// The click-id cookie, set over HTTPS, is Secure.
	req, _ := http.NewRequest(http.MethodPost, base+"/v1/page", strings.NewReader(`{"anonymousId":"a1","properties":{"url":"https://www.example.com/?li_fat_id=abc123"}}`))
	req.SetBasicAuth("wk_1", "")
	req.Header.Set("Origin", "https://www.example.com")
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: a.pool}}}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	hc.CloseIdleConnections()
	if c := resp.Header.Get("Set-Cookie"); !strings.Contains(c, "capstan_lfi=abc123") || !strings.Contains(c, "Secure") {
		t.Errorf("Set-Cookie %q, want capstan_lfi Secure", c)
	}

	b.install(t, certFile, keyFile)
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	var status int
	var cn string
	eventually(10*time.Second, func() bool {
		status, cn, err = get(base+"/healthz", b.pool)
		return err == nil
	})
	if err != nil || status != 200 || cn != "second" {
		t.Fatalf("after SIGHUP: %d %q %v; want 200 from the second certificate\n%s", status, cn, err, logs.String())
	}
	if !strings.Contains(logs.String(), "TLS certificate reloaded") {
		t.Errorf("the reload is not logged:\n%s", logs.String())
	}
}

// TestACMEWiring checks what can be checked offline of server.tls.acme:
// the listener answers ACME's TLS-ALPN-01 challenges and refuses names it
// was not configured for. Obtaining a certificate needs a real CA and DNS.
func TestACMEWiring(t *testing.T) {
	dir := t.TempDir()
	cfg, err := config.Parse("acme.yaml", []byte("server:\n  data_dir: "+dir+"\n  tls:\n    acme: {domains: [ingest.example.com], email: ops@example.com, directory_url: https://acme.invalid/directory}\n"+
		"sources: [{name: website, write_key: wk_1}]\n"), os.LookupEnv)
	if err != nil {
		t.Fatal(err)
	}
	tc, certs, err := newTLS(cfg.Server.TLS, slog.New(slog.DiscardHandler))
	if err != nil || tc == nil || certs != nil {
		t.Fatalf("newTLS = %v, %v, %v; want a TLS configuration without a file reloader", tc, certs, err)
	}
	if !slices.Contains(tc.NextProtos, "acme-tls/1") {
		t.Errorf("NextProtos %v lack acme-tls/1 (TLS-ALPN-01)", tc.NextProtos)
	}
	_, err = tc.GetCertificate(&tls.ClientHelloInfo{ServerName: "other.example.com"})
	if err == nil || !strings.Contains(err.Error(), "not configured") {
		t.Errorf("a certificate for another name: %v, want refused by the host policy", err)
	}
	m := acmeManager(cfg.Server.TLS.ACME)
	if m.Email != "ops@example.com" || m.Client.DirectoryURL != "https://acme.invalid/directory" || string(m.Cache.(autocert.DirCache)) != filepath.Join(dir, "acme") {
		t.Errorf("manager: email %q, directory %q, cache %v", m.Email, m.Client.DirectoryURL, m.Cache)
	}
}
