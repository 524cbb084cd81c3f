package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/capstan-gw/capstan/internal/stream"
)

// defaultStreamTimeout bounds reading a stream (loadgen stream, and the
// delivery benchmark's receivedAt read) unless -timeout / -stream-timeout
// say otherwise: enough for a few million events; counting tens of millions
// on a loaded machine takes longer (bench/memory.sh passes more).
const defaultStreamTimeout = 5 * time.Minute

// streamConfig is what "loadgen stream" is asked to do.
type streamConfig struct {
	ctlPath string        // the running capstan's DATA_DIR/engine.json
	name    string        // stream name
	expect  int64         // expected event (message) count; -1: no check
	timeout time.Duration // longest time for attaching, the info and the read
}

// parseStreamFlags parses the flags of "loadgen stream".
func parseStreamFlags(args []string) (streamConfig, error) {
	var c streamConfig
	fs := flag.NewFlagSet("stream", flag.ContinueOnError)
	fs.StringVar(&c.ctlPath, "engine", "", "the running capstan's DATA_DIR/engine.json")
	fs.StringVar(&c.name, "stream", "EVENTS", "stream name")
	fs.Int64Var(&c.expect, "expect", -1, "expected event count (message count for a stream other than EVENTS); exit 3 when different (-1: no check)")
	fs.DurationVar(&c.timeout, "timeout", defaultStreamTimeout, "give up after this long (attach, stream info and reading every event; 50 M events took more than 5m on a loaded machine)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if c.timeout <= 0 {
		return c, errors.New("-timeout must be positive")
	}
	return c, nil
}

// streamCmd prints the state of a stream of a running capstan's embedded
// engine and, for EVENTS, how many events it holds (read through capstan's
// read path: a message, a segment, holds one or more events), and compares
// that count (the message count for another stream) with -expect. It gives
// up after -timeout.
func streamCmd(args []string) error {
	c, err := parseStreamFlags(args)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	eng, err := attachEngine(ctx, c.ctlPath)
	if err != nil {
		return err
	}
	defer eng.Close()
	s, err := eng.JetStream().Stream(ctx, c.name)
	if err != nil {
		return fmt.Errorf("stream %s: %w", c.name, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return fmt.Errorf("stream %s info: %w", c.name, err)
	}
	st := info.State
	events := int64(st.Msgs)
	if c.name == stream.EventsStream {
		events = 0
		if err := eng.ReadEvents(ctx, stream.ReadOptions{}, func(stream.Stored) error { events++; return nil }); err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("read %s: %d events counted, gave up after -timeout %s: %w", c.name, events, c.timeout, err)
			}
			return fmt.Errorf("read %s: %w", c.name, err)
		}
	}
	out, _ := json.Marshal(map[string]any{
		"stream": c.name, "messages": st.Msgs, "events": events, "bytes": st.Bytes,
		"first_seq": st.FirstSeq, "last_seq": st.LastSeq, "expect": c.expect,
	})
	fmt.Println(string(out))
	if c.expect >= 0 && events != c.expect {
		fmt.Fprintf(os.Stderr, "loadgen: stream %s holds %d events, %d were acknowledged\n", c.name, events, c.expect)
		os.Exit(3)
	}
	return nil
}
