package linkedin

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// An expired token that cannot be refreshed (a generated token, no
// refresh token) fails the access check with a message that says it
// expired and how to get a new one.
func TestCheckAccessExpired(t *testing.T) {
	e := newEnv(t, nil)
	e.srv.ExpireToken(sbToken)
	cfg := e.config()
	cfg.Credentials.RefreshToken = ""
	_, err := e.client(t, cfg).CheckAccess(context.Background(), sbAccount)
	t.Logf("expired: %v", err)
	if !errors.Is(err, ErrReauthRequired) || !strings.Contains(err.Error(), "expired") || !strings.Contains(err.Error(), "capstan auth linkedin") {
		t.Errorf("expired: %v", err)
	}
}
