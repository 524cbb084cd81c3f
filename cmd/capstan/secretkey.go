package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/capstan-gw/capstan/internal/config"
	lidest "github.com/capstan-gw/capstan/internal/delivery/linkedin"
	"github.com/capstan-gw/capstan/internal/secret"
	"github.com/capstan-gw/capstan/internal/stream"
)

// secretKey returns the key of server.secret_key, or nil when none is set
// (server.insecure_plaintext_secrets, or a command that needs none).
func secretKey(cfg *config.Config) (*secret.Key, error) {
	k := cfg.Server.SecretKey.Value()
	if k == "" {
		return nil, nil
	}
	key, err := secret.ParseKey(k)
	if err != nil { // config.Load checked it: only a Config built in code gets here
		return nil, usageErr(cfg.Errorf("server.secret_key", "%v", err))
	}
	return key, nil
}

func newSecretKeyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "secret-key",
		Short: "Make or change the key that encrypts secrets at rest",
		Long: `server.secret_key encrypts, with AES-256-GCM, the LinkedIn tokens capstan
keeps in its state bucket (refreshed ones, and those installed through the
admin API). "new" prints a fresh key; "rotate" re-encrypts every stored
token from the configured key to a new one.`,
	}
	cmd.AddCommand(newSecretKeyNewCmd(), newSecretKeyRotateCmd())
	return cmd
}

func newSecretKeyNewCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "new",
		Short: "Print a new random key (32 bytes, base64)",
		Long: `Print a new random key for server.secret_key: 32 bytes from the system's
secure random source, in base64 (the same as head -c32 /dev/urandom | base64).
Keep it where the configuration reads it from, such as the environment.`,
		Example: `  export CAPSTAN_SECRET_KEY=$(capstan secret-key new)`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), secret.Generate())
			return err
		},
	}
}

func newSecretKeyRotateCmd() *cobra.Command {
	var cfgPath, newEnv string
	cmd := &cobra.Command{
		Use:   "rotate --config FILE --new-key-env NAME",
		Short: "Re-encrypt the stored tokens with a new key",
		Long: `Re-encrypt every token kept in the state bucket: each is opened with the
configuration's server.secret_key (the old key; without one, the tokens must
be in plaintext, as server.insecure_plaintext_secrets keeps them) and sealed
with the new key, read from the environment variable NAME so that it appears
in no command line. Then point server.secret_key at the new key and start
capstan.

Stop capstan first (every replica, with an external cluster): a running
capstan would go on writing with the old key. With the embedded engine the
command refuses to run while a capstan holds the data directory.`,
		Example: `  export NEW_CAPSTAN_SECRET_KEY=$(capstan secret-key new)
  capstan secret-key rotate --config capstan.yaml --new-key-env NEW_CAPSTAN_SECRET_KEY
  export CAPSTAN_SECRET_KEY=$NEW_CAPSTAN_SECRET_KEY   # then start capstan`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if newEnv == "" {
				return usageErr(errors.New("--new-key-env is required: the name of the environment variable holding the new key"))
			}
			text, ok := os.LookupEnv(newEnv)
			if !ok || text == "" {
				return usageErr(fmt.Errorf("--new-key-env: environment variable %s is not set", newEnv))
			}
			to, err := secret.ParseKey(text)
			if err != nil {
				return usageErr(fmt.Errorf("--new-key-env: %s: %w", newEnv, err))
			}
			return withEngine(cmd, cfgPath, func(ctx context.Context, cfg *config.Config, eng *stream.Engine) error {
				from, err := secretKey(cfg)
				if err != nil {
					return err
				}
				if cfg.Engine.NatsURL == "" && !eng.Embedded() {
					return errors.New("a capstan is running on this data directory: stop it first, it would go on writing with the old key")
				}
				state, err := eng.KV(ctx, stream.StateKV, 0)
				if err != nil {
					return err
				}
				n, err := lidest.Reseal(ctx, state, from, to)
				if err != nil {
					return fmt.Errorf("rotate (%d tokens re-encrypted before the error; run it again once fixed): %w", n, err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%d tokens re-encrypted with key %s; set server.secret_key to the new key (for example CAPSTAN_SECRET_KEY=$%s) before starting capstan\n", n, to.ID(), newEnv)
				return nil
			})
		},
	}
	cmd.Flags().StringVarP(&cfgPath, "config", "c", "", "configuration file (YAML); its server.secret_key is the old key")
	cmd.Flags().StringVar(&newEnv, "new-key-env", "", "environment variable holding the new key (base64)")
	return cmd
}
