package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/capstan-gw/capstan/internal/admin"
	"github.com/capstan-gw/capstan/internal/config"
	"github.com/capstan-gw/capstan/internal/delivery"
	"github.com/capstan-gw/capstan/internal/identity"
	"github.com/capstan-gw/capstan/internal/linkedin"
	"github.com/capstan-gw/capstan/internal/privacy"
	"github.com/capstan-gw/capstan/internal/stats"
	"github.com/capstan-gw/capstan/internal/stream"
)

// newAdmin wires the admin API to the running gateway's parts.
// sup is nil with privacy.suppress off; st is nil when no statistics are
// kept.
func newAdmin(cfg *config.Config, dests []*destination, graph *identity.Graph, sup *privacy.Suppressions, eng *stream.Engine, w *stream.Writer, st *stats.Collector, log *slog.Logger) (*admin.Server, error) {
	var ident admin.Identity
	var enr delivery.Enricher
	var del admin.Privacy
	if graph != nil {
		ident, enr = graph, graph
		d, err := privacy.NewDeleter(eng, graph, sup, linkedin.HashEmail, log)
		if err != nil {
			return nil, err
		}
		del = d
	}
	if enr != nil && sup != nil {
		// Preview shows suppressed people's events as delivery treats them.
		enr = struct {
			delivery.Enricher
			*privacy.Suppressions
		}{enr, sup}
	}
	deps := admin.Deps{
		Identity:    ident,
		DeadLetters: admin.EngineDeadLetters{Engine: eng, Writer: w},
		Events:      admin.EngineEvents{Engine: eng},
		Privacy:     del,
		Audit:       admin.EngineAudit{Engine: eng},
		Preview: admin.PreviewFunc(func(ctx context.Context, events json.RawMessage, source, dest string) (any, bool, error) {
			var plans []*delivery.Plan
			for _, d := range dests {
				if dest == "" || d.Name() == dest {
					plans = append(plans, d.runner.Plan()) // the plan in force, also after a reload
				}
			}
			return delivery.Preview(ctx, plans, events, source, time.Now(), enr)
		}),
	}
	if st != nil {
		deps.Stats = st
	}
	runners := make([]*delivery.Runner, 0, len(dests))
	for _, d := range dests {
		deps.Destinations = append(deps.Destinations, d)
		runners = append(runners, d.runner)
	}
	deps.Explain = admin.EngineExplainer{Engine: eng, Runners: runners}
	imp := admin.EngineImporter{Engine: eng, Writer: w, Version: readBuildInfo().Version}
	for _, src := range cfg.Sources {
		imp.SourceNames = append(imp.SourceNames, src.Name)
	}
	deps.Import = imp
	acfg, err := adminConfig(cfg.Server)
	if err != nil {
		return nil, err
	}
	// The console's uploads wait here while imported; what a crash left
	// is of no use (importing the file again resumes from its checkpoint).
	acfg.ImportDir = filepath.Join(cfg.Server.DataDir, "imports")
	if err := os.RemoveAll(acfg.ImportDir); err != nil {
		log.Warn("uploads of interrupted console imports not removed", "dir", acfg.ImportDir, "error", err)
	}
	return admin.New(acfg, deps, log)
}

// adminConfig is the admin API's configuration from server.*: the admin
// token, the console's users, and what makes the cookie Secure.
func adminConfig(s config.Server) (admin.Config, error) {
	c := admin.Config{Token: s.AdminToken, SecureCookies: s.TLS.Enabled() || strings.HasPrefix(s.PublicURL, "https://")}
	for _, u := range s.AdminUsers {
		role, err := admin.ParseRole(u.Role)
		if err != nil {
			return admin.Config{}, fmt.Errorf("server.admin_users: %q: %w", u.Name, err)
		}
		c.Users = append(c.Users, admin.User{Name: u.Name, PasswordHash: u.PasswordHash.Value(), Role: role})
	}
	for _, p := range s.TrustedProxies {
		pfx, err := netip.ParsePrefix(p)
		if err != nil {
			a, aerr := netip.ParseAddr(p)
			if aerr != nil {
				return admin.Config{}, fmt.Errorf("server.trusted_proxies: %q: %w", p, aerr)
			}
			pfx = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		}
		c.TrustedProxies = append(c.TrustedProxies, pfx)
	}
	return c, nil
}
