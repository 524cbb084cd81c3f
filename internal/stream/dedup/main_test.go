package dedup

import (
	"testing"

	"github.com/capstan-gw/capstan/internal/leakcheck"
)

// TestMain fails the run if the tests leave goroutines running.
func TestMain(m *testing.M) { leakcheck.Main(m) }
