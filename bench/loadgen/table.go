package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// tableCmd renders result lines as a Markdown table. A target whose name
// starts with "null" is the baseline of its scenario.
func tableCmd(args []string) error {
	fs := flag.NewFlagSet("table", flag.ExitOnError)
	delivery := fs.Bool("delivery", false, "render the delivery benchmark's tables (bench/delivery.sh)")
	_ = fs.Parse(args)
	var rows []Result
	for _, path := range fs.Args() {
		f, err := os.Open(path)
		if err != nil {
			return fmt.Errorf("open results: %w", err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var r Result
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				f.Close()
				return fmt.Errorf("%s: %w", path, err)
			}
			rows = append(rows, r)
		}
		f.Close()
		if err := sc.Err(); err != nil {
			return fmt.Errorf("read %s: %w", path, err)
		}
	}
	if *delivery {
		writeDeliveryTables(os.Stdout, rows)
		return nil
	}
	writeTable(os.Stdout, rows)
	return nil
}

func writeTable(w io.Writer, rows []Result) {
	null := map[string]Result{}
	for _, r := range rows {
		if strings.HasPrefix(r.Target, "null") {
			null[r.Scenario] = r
		}
	}
	fmt.Fprintln(w, "| scenario | target | events/s | requests/s | p50 ms | p99 ms | p99.9 ms | max ms | errors | server CPU (cores) | server CPU µs/event | loadgen CPU (cores) | events/s vs null | p99 vs null | load (1 min) at start |")
	fmt.Fprintln(w, "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
	for _, r := range rows {
		ratioE, ratioP := "—", "—"
		if n, ok := null[r.Scenario]; ok && !strings.HasPrefix(r.Target, "null") {
			if n.EventsPerS > 0 {
				ratioE = fmt.Sprintf("%.2f×", r.EventsPerS/n.EventsPerS)
			}
			if n.P99Ms > 0 {
				ratioP = fmt.Sprintf("%.1f×", r.P99Ms/n.P99Ms)
			}
		}
		load, _, _ := strings.Cut(r.LoadAvg, " ")
		fmt.Fprintf(w, "| %s | %s | %.0f | %.0f | %.2f | %.2f | %.2f | %.1f | %d | %s | %s | %s | %s | %s | %s |\n",
			r.Scenario, r.Target, r.EventsPerS, r.ReqPerS, r.P50Ms, r.P99Ms, r.P999Ms, r.MaxMs,
			r.Errors, cores(r.ServerCPUCores), perEvent(r.ServerCPUPerEventUs), cores(r.LoadgenCPUCores), ratioE, ratioP, load)
	}
}

func cores(c float64) string {
	if c < 0 {
		return "?"
	}
	return fmt.Sprintf("%.2f", c)
}

func perEvent(us float64) string {
	if us < 0 {
		return "?"
	}
	return fmt.Sprintf("%.1f", us)
}
