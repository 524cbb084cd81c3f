package cputime

import (
	"testing"

	"github.com/capstan-gw/capstan/internal/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }
