package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/capstan-gw/capstan/internal/stream"
)

// streamCmd prints the state of a stream of a running capstan's embedded
// engine and, for EVENTS, how many events it holds (read through capstan's
// read path: a message, a segment, holds one or more events), and compares
// that count (the message count for another stream) with -expect.
func streamCmd(args []string) error {
	fs := flag.NewFlagSet("stream", flag.ExitOnError)
	ctlPath := fs.String("engine", "", "the running capstan's DATA_DIR/engine.json")
	name := fs.String("stream", "EVENTS", "stream name")
	expect := fs.Int64("expect", -1, "expected event count (message count for a stream other than EVENTS); exit 3 when different (-1: no check)")
	_ = fs.Parse(args)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	eng, err := attachEngine(ctx, *ctlPath)
	if err != nil {
		return err
	}
	defer eng.Close()
	s, err := eng.JetStream().Stream(ctx, *name)
	if err != nil {
		return fmt.Errorf("stream %s: %w", *name, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return fmt.Errorf("stream %s info: %w", *name, err)
	}
	st := info.State
	events := int64(st.Msgs)
	if *name == stream.EventsStream {
		events = 0
		if err := eng.ReadEvents(ctx, stream.ReadOptions{}, func(stream.Stored) error { events++; return nil }); err != nil {
			return fmt.Errorf("read %s: %w", *name, err)
		}
	}
	out, _ := json.Marshal(map[string]any{
		"stream": *name, "messages": st.Msgs, "events": events, "bytes": st.Bytes,
		"first_seq": st.FirstSeq, "last_seq": st.LastSeq, "expect": *expect,
	})
	fmt.Println(string(out))
	if *expect >= 0 && events != *expect {
		fmt.Fprintf(os.Stderr, "loadgen: stream %s holds %d events, %d were acknowledged\n", *name, events, *expect)
		os.Exit(3)
	}
	return nil
}
