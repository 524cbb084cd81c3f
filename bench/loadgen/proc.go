package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, 100 on every Linux architecture Go supports.
const clockTicks = 100

// procCPU returns the user+system CPU seconds of a process ("self" or a
// pid), or -1 if unknown.
func procCPU(pid string) float64 {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return -1
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return -1
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return -1
	}
	ut, err1 := strconv.ParseFloat(f[11], 64) // field 14
	st, err2 := strconv.ParseFloat(f[12], 64) // field 15
	if err1 != nil || err2 != nil {
		return -1
	}
	return (ut + st) / clockTicks
}

// procRunqWait returns the seconds the threads of a process ("self" or a
// pid) have spent runnable but waiting for a CPU (the second field of each
// /proc/PID/task/TID/schedstat), or -1 if unknown. Threads that exited
// are not counted.
func procRunqWait(pid string) float64 {
	dir := "/proc/" + pid + "/task"
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return -1
	}
	var ns float64
	n := 0
	for _, t := range tasks {
		b, err := os.ReadFile(dir + "/" + t.Name() + "/schedstat")
		if err != nil {
			continue
		}
		f := strings.Fields(string(b))
		if len(f) < 2 {
			continue
		}
		w, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			continue
		}
		ns += w
		n++
	}
	if n == 0 {
		return -1
	}
	return ns / 1e9
}

// cpuWindow holds CPU and run-queue wait readings at the start and end of
// the measured window.
type cpuWindow struct {
	srv0, srv1, self0, self1           float64
	srvWait0, srvWait1, selfW0, selfW1 float64
}

func (c *cpuWindow) measure(ctx context.Context, pid int, from, to time.Time) {
	srv := "-"
	if pid > 0 {
		srv = strconv.Itoa(pid)
	}
	c.srv0, c.srv1, c.self0, c.self1 = -1, -1, -1, -1
	c.srvWait0, c.srvWait1, c.selfW0, c.selfW1 = -1, -1, -1, -1
	if !sleepUntil(ctx, from) {
		return
	}
	c.srv0, c.self0 = procCPU(srv), procCPU("self")
	if pid > 0 {
		c.srvWait0 = procRunqWait(srv)
	}
	c.selfW0 = procRunqWait("self")
	if !sleepUntil(ctx, to) {
		return
	}
	c.srv1, c.self1 = procCPU(srv), procCPU("self")
	if pid > 0 {
		c.srvWait1 = procRunqWait(srv)
	}
	c.selfW1 = procRunqWait("self")
}

// runqPerCPU returns, for the server and loadgen, the seconds their
// threads waited for a CPU per CPU second they ran in the window (-1
// unknown): near 0 on an idle machine; above 1 the process waited for the
// processor longer than it used it, and every latency shows it.
func (c *cpuWindow) runqPerCPU() (server, self float64) {
	ratio := func(w0, w1, c0, c1 float64) float64 {
		if w0 < 0 || w1 < 0 || c0 < 0 || c1 <= c0 {
			return -1
		}
		return (w1 - w0) / (c1 - c0)
	}
	return ratio(c.srvWait0, c.srvWait1, c.srv0, c.srv1), ratio(c.selfW0, c.selfW1, c.self0, c.self1)
}

func (c *cpuWindow) cores(secs float64) (server, self float64) {
	server, self = -1, -1
	if c.srv0 >= 0 && c.srv1 >= 0 {
		server = (c.srv1 - c.srv0) / secs
	}
	if c.self0 >= 0 && c.self1 >= 0 {
		self = (c.self1 - c.self0) / secs
	}
	return server, self
}

func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func readLoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return fmt.Sprintf("unknown (%v)", err)
	}
	f := strings.Fields(string(b))
	return strings.Join(f[:min(3, len(f))], " ")
}
