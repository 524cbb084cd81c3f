package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/capstan-gw/capstan/internal/migrate"
)

func newMigrateCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Translate another tool's configuration into capstan's",
		Long: `Translate another tool's configuration into capstan's YAML. For now:
Segment's LinkedIn Conversions API destinations (capstan migrate segment).`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newMigrateSegmentCmd())
	return cmd
}

func newMigrateSegmentCmd() *cobra.Command {
	var from, out string
	cmd := &cobra.Command{
		Use:   "segment --from EXPORT.json [--out FILE]",
		Short: "Write capstan's configuration for a Segment destination export",
		Long: `Read a Segment destination export (JSON: the sources, and the destinations
with their settings and subscriptions, each subscription's trigger and
mapping) and write capstan's YAML configuration to --out, or to standard
output: every LinkedIn Conversions API destination with its "Stream
Conversion Event" subscriptions as mappings.

Each trigger and each mapping is written unchanged, the mapping's JSON as the
export lays it out; fields the Segment mapping leaves out are written as null
(a Segment mapping is complete as given, while capstan's YAML would fill in
the defaults), so that capstan sends exactly what Segment sent. The
conversion rule ids saved by the mappings' onMappingSave hook are kept, so
capstan creates no rule again; a mapping whose hook never saved an id gets
conversion_rule.create from its inputs. Campaigns and the ad account come
from the hook's inputs. Write keys and allowed origins of the sources are
copied, since clients keep sending the same write keys.

Secrets are never copied: the YAML reads the LinkedIn access token and
server.secret_key from environment variables, listed on standard error.
Segment's refresh token belongs to Segment's own LinkedIn app and is not
used.

What cannot be translated (another destination type, another action, a
mapping directive or a trigger capstan does not support, a setting with no
capstan equivalent) is left out of the file and named on standard error
with its JSON path in the export; the exit code is then 3. The written file
always passes capstan serve's validation once its variables are set.

Exit codes: 0 everything translated, 2 usage error (no --from, unreadable
file, invalid JSON with its line and column), 3 some parts left out.`,
		Example: `  capstan migrate segment --from segment-export.json --out capstan.yaml
  capstan migrate segment --from segment-export.json > capstan.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if from == "" {
				return usageErr(errors.New("--from is required: the Segment export (JSON)"))
			}
			if out != "" {
				if a, b := filepath.Clean(out), filepath.Clean(from); a == b {
					return usageErr(fmt.Errorf("--out %s is the export itself: write the YAML to another file", out))
				}
			}
			text, err := os.ReadFile(from)
			if err != nil {
				return usageErr(fmt.Errorf("read the export: %w", err))
			}
			res, err := migrate.Segment(text, migrate.Options{From: filepath.Base(from)})
			var se *migrate.SyntaxError
			switch {
			case errors.As(err, &se):
				return usageErr(fmt.Errorf("%s:%w", from, se))
			case err != nil:
				return err
			}
			if out == "" {
				if _, err := cmd.OutOrStdout().Write(res.YAML); err != nil {
					return err
				}
			} else if err := writeFileAtomic(out, res.YAML); err != nil {
				return err
			}
			reportMigration(cmd.ErrOrStderr(), from, out, res)
			if len(res.Problems) > 0 {
				return &exitError{code: exitInvalid, err: fmt.Errorf("%d part(s) of %s could not be migrated and were left out (listed above)", len(res.Problems), from)}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&from, "from", "", "the Segment export (JSON)")
	f.StringVarP(&out, "out", "o", "", "write the YAML to this file (default: standard output)")
	return cmd
}

// reportMigration tells, on w, what the person must do and what was left
// out.
func reportMigration(w io.Writer, from, out string, res *migrate.Result) {
	for _, p := range res.Placeholders {
		where := "the export had none"
		if p.Path != "" {
			where = "not copied from " + p.Path
		}
		fmt.Fprintf(w, "capstan: %s (%s): the YAML reads it from ${%s}\n", p.What, where, p.Env)
	}
	fmt.Fprintln(w, "capstan: server.secret_key: the YAML reads it from ${CAPSTAN_SECRET_KEY} (make one with `capstan secret-key new`)")
	for _, n := range res.Notes {
		fmt.Fprintf(w, "capstan: note: %s\n", n)
	}
	for _, p := range res.Problems {
		fmt.Fprintf(w, "capstan: %s: %s\n", from, p)
	}
	dest := out
	if dest == "" {
		dest = "standard output"
	}
	fmt.Fprintf(w, "capstan: migrated %d destination(s) with %d mapping(s) to %s\n", res.Destinations, res.Mappings, dest)
}

// writeFileAtomic writes data to path (mode 0600: the file names write
// keys) through a temporary file, so that an interrupted run leaves no half
// file.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Chmod(tmp.Name(), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
