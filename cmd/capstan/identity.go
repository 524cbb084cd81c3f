package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/capstan-gw/capstan/internal/config"
	"github.com/capstan-gw/capstan/internal/identity"
	"github.com/capstan-gw/capstan/internal/stream"
)

func newIdentityCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "identity",
		Short: "Show or delete what the identity graph holds about a person",
		Long: `Show or delete what the identity graph holds about a person, named by a
userId or an anonymousId: for privacy requests and support. The graph stores
the email only as its SHA-256 and ids only as the SHA-256 in their keys
("u.<sha256(userId)>", "a.<sha256(anonymousId)>").

The graph lives where identity.store says: with the embedded engine, in the
local store data_dir/identity, which a running capstan holds (the command
then goes through it, on the engine's local port) or the command opens
itself when none runs; with engine.nats_url, in the KV bucket "identity".`,
	}
	cmd.AddCommand(newIdentityShowCmd(), newIdentityDeleteCmd())
	return cmd
}

// identityFlags are the flags both subcommands take.
type identityFlags struct {
	cfgPath     string
	userID      string
	anonymousID string
	asJSON      bool
}

func (f *identityFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&f.cfgPath, "config", "c", "", "configuration file (YAML)")
	cmd.Flags().StringVar(&f.userID, "user-id", "", "the person's userId")
	cmd.Flags().StringVar(&f.anonymousID, "anonymous-id", "", "the person's anonymousId")
	cmd.Flags().BoolVar(&f.asJSON, "json", false, "print JSON")
}

// run checks the flags, opens the graph on the engine (that of a running
// capstan, the data directory, or the external cluster) and calls fn.
func (f *identityFlags) run(cmd *cobra.Command, fn func(ctx context.Context, g *identity.Graph, k identity.Key) error) error {
	k := identity.Key{UserID: strings.TrimSpace(f.userID), AnonymousID: strings.TrimSpace(f.anonymousID)}
	if (k.UserID == "") == (k.AnonymousID == "") {
		return usageErr(errors.New("give exactly one of --user-id and --anonymous-id"))
	}
	return withEngine(cmd, f.cfgPath, func(ctx context.Context, cfg *config.Config, eng *stream.Engine) error {
		g, local, err := openIdentity(ctx, cfg, eng, stderrLogger())
		if err != nil {
			return err
		}
		defer closeLocal(local)
		err = fn(ctx, g, k)
		if errors.Is(err, identity.ErrNotFound) {
			return fmt.Errorf("%s: %w", describeKey(k), err)
		}
		return err
	})
}

func describeKey(k identity.Key) string {
	if k.UserID != "" {
		return fmt.Sprintf("userId %q", k.UserID)
	}
	return fmt.Sprintf("anonymousId %q", k.AnonymousID)
}

func newIdentityShowCmd() *cobra.Command {
	var f identityFlags
	cmd := &cobra.Command{
		Use:   "show --config FILE (--user-id ID | --anonymous-id ID) [--json]",
		Short: "Print what the graph holds about a person",
		Long: `Print the profile of a userId or anonymousId and the profiles linked to it
(anonymous ids of a user, the users of an anonymous id, aliases): the
LinkedIn click id li_fat_id and the email's SHA-256 with the time of the
event that carried them, groupIds, links, and when the profile expires.
Exits 1 when the graph holds nothing for the id.`,
		Example: `  capstan identity show --config capstan.yaml --user-id user_12345
  capstan identity show --config capstan.yaml --anonymous-id 3f0b0c3e-9c1d-4f1e-a1e7-6f2f9b1d2c44 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.run(cmd, func(ctx context.Context, g *identity.Graph, k identity.Key) error {
				p, err := g.Show(ctx, k)
				if err != nil {
					return err
				}
				if f.asJSON {
					return writeIndentedJSON(cmd.OutOrStdout(), p)
				}
				return printProfile(cmd.OutOrStdout(), p)
			})
		},
	}
	f.add(cmd)
	return cmd
}

func newIdentityDeleteCmd() *cobra.Command {
	var f identityFlags
	cmd := &cobra.Command{
		Use:   "delete --config FILE (--user-id ID | --anonymous-id ID) [--json]",
		Short: "Delete everything the graph holds about a person",
		Long: `Delete the profile of a userId or anonymousId and every profile linked to
it, so that no key about the person remains in the bucket (no delete marker
either): from a user, its anonymous ids and aliases; from an anonymous id,
its current user and that user's. A browser shared with another user is
deleted too and unlinked from that user, whose own profile stays. Prints the
keys removed; exits 1 when the graph holds nothing for the id.`,
		Example: `  capstan identity delete --config capstan.yaml --user-id user_12345`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.run(cmd, func(ctx context.Context, g *identity.Graph, k identity.Key) error {
				removed, err := g.Delete(ctx, k)
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if f.asJSON {
					return writeIndentedJSON(out, struct {
						Removed []string `json:"removed"`
					}{removed})
				}
				fmt.Fprintf(out, "removed %d keys of %s:\n", len(removed), describeKey(k))
				for _, r := range removed {
					fmt.Fprintf(out, "  %s\n", r)
				}
				return nil
			})
		},
	}
	f.add(cmd)
	return cmd
}

func writeIndentedJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func printProfile(w io.Writer, p identity.Profile) error {
	var b strings.Builder
	writeProfile(&b, p, "")
	if len(p.Linked) > 0 {
		b.WriteString("linked:\n")
		for _, l := range p.Linked {
			writeProfile(&b, l, "  ")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writeProfile(b *strings.Builder, p identity.Profile, indent string) {
	line := func(name, format string, args ...any) {
		fmt.Fprintf(b, "%s%-13s "+format+"\n", append([]any{indent, name}, args...)...)
	}
	line("key", "%s (%s)", p.Key, p.Kind)
	if p.LiFatID != "" {
		line("li_fat_id", "%s (event of %s)", p.LiFatID, stamp(p.LiFatIDAt))
	}
	if p.EmailSHA256 != "" {
		line("email sha256", "%s (event of %s)", p.EmailSHA256, stamp(p.EmailAt))
	}
	if len(p.Groups) > 0 {
		line("groups", "%s", strings.Join(p.Groups, ", "))
	}
	if p.AliasOf != "" {
		line("alias of", "%s", p.AliasOf)
	}
	for i, l := range p.Links {
		name := ""
		if i == 0 {
			name = "links"
		}
		line(name, "%s", l)
	}
	for _, src := range slices.Sorted(maps.Keys(p.Unverified)) {
		u := p.Unverified[src]
		line("unverified", "from source %s (serves only its conversions)", src)
		if u.LiFatID != "" {
			line("  li_fat_id", "%s (event of %s)", u.LiFatID, stamp(u.LiFatIDAt))
		}
		if u.EmailSHA256 != "" {
			line("  email sha256", "%s (event of %s)", u.EmailSHA256, stamp(u.EmailAt))
		}
		if u.AliasOf != "" {
			line("  alias of", "%s", u.AliasOf)
		}
		for _, l := range u.Links {
			line("  link", "%s", l)
		}
	}
	line("created", "%s", stamp(p.Created))
	line("updated", "%s (expires %s)", stamp(p.Updated), stamp(p.Expires))
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
