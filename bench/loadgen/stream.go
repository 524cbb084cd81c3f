package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/url"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// streamCmd prints the state of a stream of a running capstan's embedded
// engine, and compares its message count with -expect.
func streamCmd(args []string) error {
	fs := flag.NewFlagSet("stream", flag.ExitOnError)
	ctlPath := fs.String("engine", "", "the running capstan's DATA_DIR/engine.json")
	name := fs.String("stream", "EVENTS", "stream name")
	expect := fs.Int64("expect", -1, "expected message count; exit 3 when different (-1: no check)")
	_ = fs.Parse(args)

	b, err := os.ReadFile(*ctlPath)
	if err != nil {
		return fmt.Errorf("read engine control file: %w", err)
	}
	var ctl struct {
		URL   string `json:"url"`
		Token string `json:"token"`
	}
	if err := json.Unmarshal(b, &ctl); err != nil {
		return fmt.Errorf("read engine control file: %w", err)
	}
	u, err := url.Parse(ctl.URL)
	if err != nil {
		return fmt.Errorf("engine url: %w", err)
	}
	if err := checkLoopbackHost(u.Hostname()); err != nil {
		return err
	}
	nc, err := nats.Connect(ctl.URL, nats.Token(ctl.Token), nats.Name("capstan-bench"), nats.Timeout(5*time.Second))
	if err != nil {
		return fmt.Errorf("connect to engine: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, *name)
	if err != nil {
		return fmt.Errorf("stream %s: %w", *name, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return fmt.Errorf("stream %s info: %w", *name, err)
	}
	st := info.State
	out, _ := json.Marshal(map[string]any{
		"stream": *name, "messages": st.Msgs, "bytes": st.Bytes,
		"first_seq": st.FirstSeq, "last_seq": st.LastSeq, "expect": *expect,
	})
	fmt.Println(string(out))
	if *expect >= 0 && int64(st.Msgs) != *expect {
		fmt.Fprintf(os.Stderr, "loadgen: stream %s holds %d messages, %d events were acknowledged\n", *name, st.Msgs, *expect)
		os.Exit(3)
	}
	return nil
}
