// Command liveclients holds N consoles open on Live events for the live
// benchmark (bench/live.sh): N concurrent GET /admin/api/live streams of
// one capstan, each read as a browser's EventSource would. It prints one
// JSON line: how many stored events the clients received and how many the
// server told them it skipped (sampled).
//
//	liveclients -url http://127.0.0.1:PORT -token TOKEN -n 20 -duration 30s -ready FILE
//
// -ready names a file written once every stream has had its "ready"
// event, so that the script starts the load only then. It stops after
// -duration or at SIGTERM/SIGINT.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type result struct {
	Clients   int     `json:"clients"`
	Connected int64   `json:"connected"`
	Received  int64   `json:"received"` // stored events, all clients
	Skipped   uint64  `json:"skipped"`  // the last skipped count of each client, summed
	Errors    int64   `json:"errors"`
	FirstErr  string  `json:"first_error,omitempty"`
	DurationS float64 `json:"duration_s"`
}

func main() {
	url := flag.String("url", "", "capstan's base URL (loopback)")
	token := flag.String("token", "", "the admin token")
	n := flag.Int("n", 20, "consoles (streams)")
	duration := flag.Duration("duration", 30*time.Second, "how long to hold the streams open")
	ready := flag.String("ready", "", "write this file once every stream is ready")
	query := flag.String("query", "", "filters, e.g. source=bench")
	flag.Parse()
	if *url == "" || *token == "" {
		fmt.Fprintln(os.Stderr, "liveclients: -url and -token are required")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *duration)
	defer cancel()

	var res result
	res.Clients = *n
	var received, connected, errs atomic.Int64
	var mu sync.Mutex
	skipped := make([]uint64, *n)
	var firstErr atomic.Value
	fail := func(err error) {
		errs.Add(1)
		firstErr.CompareAndSwap(nil, err.Error())
	}
	target := *url + "/admin/api/live"
	if *query != "" {
		target += "?" + *query
	}
	allReady := make(chan struct{})
	start := time.Now()
	var wg sync.WaitGroup
	for i := range *n {
		wg.Go(func() {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
			if err != nil {
				fail(err)
				return
			}
			req.Header.Set("Authorization", "Bearer "+*token)
			req.Header.Set("Accept", "text/event-stream")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				fail(err)
				return
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				fail(fmt.Errorf("GET %s: %s", target, resp.Status))
				return
			}
			sc := bufio.NewScanner(resp.Body)
			sc.Buffer(make([]byte, 64<<10), 1<<20)
			event := ""
			for sc.Scan() {
				line := sc.Text()
				switch {
				case line == "":
					event = ""
				case strings.HasPrefix(line, "event: "):
					event = strings.TrimPrefix(line, "event: ")
				case strings.HasPrefix(line, "data: "):
					data := strings.TrimPrefix(line, "data: ")
					switch event {
					case "":
						received.Add(1)
					case "ready":
						if connected.Add(1) == int64(*n) {
							close(allReady)
						}
					case "skipped":
						var s struct{ Skipped uint64 }
						if json.Unmarshal([]byte(data), &s) == nil {
							mu.Lock()
							skipped[i] = s.Skipped
							mu.Unlock()
						}
					}
				}
			}
			if err := sc.Err(); err != nil && ctx.Err() == nil {
				fail(err)
			}
		})
	}
	if *ready != "" {
		go func() {
			select {
			case <-allReady:
				if err := os.WriteFile(*ready, []byte("ready\n"), 0o644); err != nil {
					fail(err)
				}
			case <-ctx.Done():
			}
		}()
	}
	wg.Wait()
	res.DurationS = time.Since(start).Seconds()
	res.Connected, res.Received, res.Errors = connected.Load(), received.Load(), errs.Load()
	for _, s := range skipped {
		res.Skipped += s
	}
	if v, ok := firstErr.Load().(string); ok {
		res.FirstErr = v
	}
	_ = json.NewEncoder(os.Stdout).Encode(res)
}
