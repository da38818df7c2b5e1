//go:build chaos

package killpoint

import (
	"fmt"
	"os"
	"strings"
)

// Here stops forever at step when the file VPCROUTE_KILLPOINT_FILE names it: the file
// is removed (the next run goes through) and the stop is announced on standard error.
func Here(step string) {
	path := os.Getenv("VPCROUTE_KILLPOINT_FILE")
	if path == "" {
		return
	}
	b, err := os.ReadFile(path)
	if err != nil || strings.TrimSpace(string(b)) != step {
		return
	}
	_ = os.Remove(path)
	fmt.Fprintln(os.Stderr, Reached(step))
	select {}
}
