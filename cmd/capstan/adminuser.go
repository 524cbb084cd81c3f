package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/term"
)

func newAdminCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "admin",
		Short: "Helpers for the admin console's users",
		Long: `The admin console (/admin/) signs in with server.admin_token or as one of
server.admin_users, each a name, a bcrypt password hash and a role (viewer or
operator). "hash-password" makes the hash.`,
	}
	cmd.AddCommand(newHashPasswordCmd())
	return cmd
}

// minPasswordLen is the shortest password hash-password accepts; bcrypt
// reads at most 72 bytes.
const (
	minPasswordLen = 12
	maxPasswordLen = 72
)

func newHashPasswordCmd() *cobra.Command {
	var cost int
	cmd := &cobra.Command{
		Use:   "hash-password [--cost N]",
		Short: "Print the bcrypt hash of a console user's password",
		Long: `Read a password and print its bcrypt hash for server.admin_users[].password_hash.
The password is never an argument (it would stay in the shell's history and
be visible to other users in the process list): on a terminal it is asked
for twice, without echo; otherwise the first line of standard input is read.
Passwords are 12 to 72 bytes.`,
		Example: `  capstan admin hash-password
  printf '%s\n' "$PASSWORD" | capstan admin hash-password`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cost < 10 || cost > 14 {
				return usageErr(fmt.Errorf("--cost %d: use 10 to 14", cost))
			}
			pw, err := readPassword(cmd.InOrStdin(), cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if n := len(pw); n < minPasswordLen || n > maxPasswordLen {
				return usageErr(fmt.Errorf("the password is %d bytes: use %d to %d", n, minPasswordLen, maxPasswordLen))
			}
			h, err := bcrypt.GenerateFromPassword([]byte(pw), cost)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), string(h))
			return err
		},
	}
	cmd.Flags().IntVar(&cost, "cost", bcrypt.DefaultCost, "bcrypt cost, 10 to 14 (each step doubles the time of a sign-in)")
	return cmd
}

// readPassword asks for the password twice without echo when in is a
// terminal, else reads the first line of in.
func readPassword(in io.Reader, prompt io.Writer) (string, error) {
	if f, ok := in.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(prompt, "Password: ")
		a, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(prompt)
		if err != nil {
			return "", err
		}
		fmt.Fprint(prompt, "Again: ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(prompt)
		if err != nil {
			return "", err
		}
		if string(a) != string(b) {
			return "", usageErr(errors.New("the two passwords differ"))
		}
		return string(a), nil
	}
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && (err != io.EOF || line == "") {
		if err == io.EOF {
			return "", usageErr(errors.New("no password on standard input"))
		}
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}
