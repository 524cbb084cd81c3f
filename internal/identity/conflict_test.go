package identity

import (
	"errors"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

// TestCASConflict: a failed compare-and-set is recognised whether the
// stream has one replica (10071) or several (10164, what a three-node
// cluster answers), so that the profile is read again and the write
// retried; other errors are not conflicts. The cluster end-to-end tests
// (e2e/cluster_test.go) exercise the replicated case on real servers.
func TestCASConflict(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{&jetstream.APIError{Code: 400, ErrorCode: jetstream.JSErrCodeStreamWrongLastSequence, Description: "wrong last sequence: 3"}, true},
		{fmt.Errorf("publish: %w", &jetstream.APIError{Code: 400, ErrorCode: jetstream.JSErrCodeStreamWrongLastSequenceConstant, Description: "wrong last sequence"}), true},
		{fmt.Errorf("update: %w", jetstream.ErrKeyRevisionMismatch), true},
		{jetstream.ErrKeyExists, true},
		{&jetstream.APIError{Code: 503, ErrorCode: 10008, Description: "JetStream system temporarily unavailable"}, false},
		{errors.New("no acknowledgement within 10s"), false},
	} {
		if got := casConflict(c.err); got != c.want {
			t.Errorf("casConflict(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
