// Command loadgen drives capstan's ingest benchmark (bench/ingest.sh).
//
//	loadgen run    -url http://127.0.0.1:PORT -endpoint /v1/batch -concurrency 32 -batch 100 -duration 20s ...
//	loadgen run    -url http://127.0.0.1:PORT -endpoint /v1/track -rate 2000 -duration 20s ...
//	loadgen stream -engine DATA_DIR/engine.json
//	loadgen table  results.jsonl
//	loadgen drain  -sandbox http://127.0.0.1:PORT -expect N -server-pid PID ...
//
// "run" sends Segment requests either closed-loop (a fixed number of
// connections, each sending its next request as soon as the previous one is
// answered) or open-loop (-rate: requests leave at scheduled times whatever
// the server does, and latency is measured from the scheduled time, so a
// slow server cannot hide its queueing: no coordinated omission). It prints
// a summary on stderr and appends one JSON result line to -out.
//
// Everything is bounded: the warm-up and measured durations, a request cap
// (-max-requests), a per-request timeout and a drain deadline; loadgen stops
// by itself. It only ever connects to loopback addresses.
//
// "stream" prints the EVENTS stream's message count from the embedded
// engine of a running capstan (its engine.json holds URL and token).
// "table" renders result lines as the Markdown table of the results file.
// "drain" waits until the sandbox accepted a backlog of N events that a
// freshly started capstan delivers, and reports the rate (drain.go).
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "run":
		err = runCmd(os.Args[2:])
	case "stream":
		err = streamCmd(os.Args[2:])
	case "table":
		err = tableCmd(os.Args[2:])
	case "drain":
		err = drainCmd(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: loadgen run|stream|table|drain [flags]   (loadgen run -h for the flags)")
	os.Exit(2)
}
