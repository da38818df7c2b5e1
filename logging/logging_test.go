package logging

import (
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

func TestLevelsGoWhereTheyKeepTheirLevel(t *testing.T) {
	tests := []struct {
		name           string
		opts           Options
		wantOut, wantE []string // substrings, one per line, in order
	}{
		{name: "text", opts: Options{Level: slog.LevelInfo},
			wantOut: []string{"level=INFO msg=ready a=1"},
			wantE:   []string{"level=WARN msg=careful a=1", "level=ERROR msg=broken a=1"}},
		{name: "debug shown at debug", opts: Options{Level: slog.LevelDebug},
			wantOut: []string{"level=DEBUG msg=detail a=1", "level=INFO msg=ready a=1"},
			wantE:   []string{"level=WARN msg=careful a=1", "level=ERROR msg=broken a=1"}},
		{name: "journald priorities", opts: Options{Level: slog.LevelDebug, Journald: true},
			wantOut: []string{"<7>time=", "<6>time="},
			wantE:   []string{"<4>time=", "<3>time="}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb strings.Builder
			tt.opts.Stdout, tt.opts.Stderr = &out, &errb
			log := New(tt.opts).With("a", 1)
			log.Debug("detail")
			log.Info("ready")
			log.Warn("careful")
			log.Error("broken")
			check := func(stream, got string, want []string) {
				lines := strings.Split(strings.TrimSpace(got), "\n")
				if len(lines) != len(want) {
					t.Fatalf("%s has %d lines, want %d:\n%s", stream, len(lines), len(want), got)
				}
				for i, w := range want {
					if !strings.Contains(lines[i], w) || (tt.opts.Journald && !strings.HasPrefix(lines[i], w)) {
						t.Errorf("%s line %d = %q; want %q", stream, i, lines[i], w)
					}
				}
			}
			check("stdout", out.String(), tt.wantOut)
			check("stderr", errb.String(), tt.wantE)
		})
	}
}

func TestJSON(t *testing.T) {
	var out, errb strings.Builder
	New(Options{Level: slog.LevelInfo, Format: FormatJSON, Stdout: &out, Stderr: &errb}).WithGroup("g").Info("ready", "network", "web")
	var m map[string]any
	if err := json.Unmarshal([]byte(out.String()), &m); err != nil {
		t.Fatalf("not JSON: %q: %v", out.String(), err)
	}
	if m["msg"] != "ready" || m["level"] != "INFO" || m["g"].(map[string]any)["network"] != "web" {
		t.Fatalf("JSON line = %v", m)
	}
}
