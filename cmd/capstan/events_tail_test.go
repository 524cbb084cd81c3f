package main

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

// countingWriter counts the writes it gets.
type countingWriter struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	writes int
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes++
	return c.buf.Write(p)
}

func (c *countingWriter) state() (string, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String(), c.writes
}

// TestTailWriter: the lines tail prints reach stdout in few writes (not one
// per event), a line waits at most the delay (-f shows new events), and
// Close writes out the rest.
func TestTailWriter(t *testing.T) {
	var c countingWriter
	w := newTailWriter(&c, time.Hour)
	for range 1000 {
		if _, err := w.Write([]byte("an event line\n")); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got, writes := c.state()
	if n := strings.Count(got, "\n"); n != 1000 || writes > 1 {
		t.Errorf("1,000 lines: %d lines in %d writes, want 1,000 in 1", n, writes)
	}

	var d countingWriter
	w = newTailWriter(&d, 20*time.Millisecond)
	defer w.Close()
	if _, err := w.Write([]byte("one\n")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if got, _ := d.state(); got == "one\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a line buffered without Close never written")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
