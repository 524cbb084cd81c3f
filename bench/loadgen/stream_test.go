package main

import (
	"strings"
	"testing"
	"time"
)

func TestParseStreamFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    streamConfig
		wantErr string
	}{
		{
			name: "defaults keep the old 5 minutes",
			args: []string{"-engine", "d/engine.json"},
			want: streamConfig{ctlPath: "d/engine.json", name: "EVENTS", expect: -1, timeout: 5 * time.Minute},
		},
		{
			name: "a longer timeout for 50 M events",
			args: []string{"-engine", "d/engine.json", "-expect", "50000000", "-timeout", "2500s"},
			want: streamConfig{ctlPath: "d/engine.json", name: "EVENTS", expect: 50_000_000, timeout: 2500 * time.Second},
		},
		{name: "zero timeout", args: []string{"-timeout", "0s"}, wantErr: "-timeout must be positive"},
		{name: "not a duration", args: []string{"-timeout", "soon"}, wantErr: "invalid value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStreamFlags(tt.args)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}
