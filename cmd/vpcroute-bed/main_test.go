package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
)

func TestRunUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		nil,
		{"launch"},
		{"env"},
		{"env", "ecs1", "ecs2"},
		{"up", "-no-such-flag"},
	} {
		var out, errOut bytes.Buffer
		if err := run(context.Background(), args, &out, &errOut); !errors.Is(err, errUsage) {
			t.Errorf("run(%q) = %v, want the usage error", args, err)
		}
	}
}

func TestRunRejectsBadConfig(t *testing.T) {
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"status", "-prefix", "Bad-Prefix"}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "lower-case") {
		t.Errorf("status with a bad prefix = %v, want a prefix error", err)
	}
}
