package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"sync/atomic"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"

	"github.com/capstan-gw/capstan/internal/config"
)

// certReloader serves the certificate of server.tls.cert_file and
// key_file to the listener (tls.Config.GetCertificate) and reads them again
// on Reload (SIGHUP), keeping the pair in use when the new one fails. It
// is safe for concurrent use.
type certReloader struct {
	certFile, keyFile string
	log               *slog.Logger
	cert              atomic.Pointer[tls.Certificate]
}

// newCertReloader loads the pair once.
func newCertReloader(certFile, keyFile string, log *slog.Logger) (*certReloader, error) {
	c := &certReloader{certFile: certFile, keyFile: keyFile, log: log.With("component", "tls")}
	cert, err := c.load()
	if err != nil {
		return nil, err
	}
	c.cert.Store(cert)
	return c, nil
}

func (c *certReloader) load() (*tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return nil, fmt.Errorf("load TLS certificate %s and key %s: %w", c.certFile, c.keyFile, err)
	}
	if cert.Leaf == nil && len(cert.Certificate) > 0 {
		cert.Leaf, _ = x509.ParseCertificate(cert.Certificate[0])
	}
	return &cert, nil
}

// Reload reads the files again. On failure the previous certificate stays
// in use; either way the outcome is logged.
func (c *certReloader) Reload() error {
	cert, err := c.load()
	if err != nil {
		c.log.Error("TLS certificate not reloaded; the previous one stays in use", "error", err)
		return err
	}
	c.cert.Store(cert)
	args := []any{"cert_file", c.certFile}
	if cert.Leaf != nil {
		args = append(args, "subject", cert.Leaf.Subject.String(), "not_after", cert.Leaf.NotAfter)
	}
	c.log.Info("TLS certificate reloaded", args...)
	return nil
}

// GetCertificate implements tls.Config.GetCertificate.
func (c *certReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return c.cert.Load(), nil
}

// newTLS returns the listener's TLS configuration for server.tls, or nil
// for plain HTTP, and the reloader of a certificate from files (nil with
// ACME, whose manager renews certificates by itself).
func newTLS(t config.TLS, log *slog.Logger) (*tls.Config, *certReloader, error) {
	switch {
	case t.CertFile != "":
		r, err := newCertReloader(t.CertFile, t.KeyFile, log)
		if err != nil {
			return nil, nil, err
		}
		return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: r.GetCertificate}, r, nil
	case t.ACME != nil:
		return acmeManager(t.ACME).TLSConfig(), nil, nil
	}
	return nil, nil, nil
}

// acmeManager obtains and renews certificates for the configured domains
// (TLS-ALPN-01 challenges, answered on the listener itself), accepting the
// CA's terms of service, and keeps them in cache_dir.
func acmeManager(a *config.ACME) *autocert.Manager {
	m := &autocert.Manager{
		Prompt:     autocert.AcceptTOS,
		HostPolicy: autocert.HostWhitelist(a.Domains...),
		Cache:      autocert.DirCache(a.CacheDir),
		Email:      a.Email,
	}
	if a.DirectoryURL != "" {
		m.Client = &acme.Client{DirectoryURL: a.DirectoryURL}
	}
	return m
}
