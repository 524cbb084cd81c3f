package leakcheck

import "testing"

// TestMain checks this package's own tests with Main.
func TestMain(m *testing.M) { Main(m) }
