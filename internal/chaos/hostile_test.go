package chaos

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"

	"github.com/vpcroute/vpcroute/driver"
	"github.com/vpcroute/vpcroute/internal/testctl"
	"github.com/vpcroute/vpcroute/ipam"
	"github.com/vpcroute/vpcroute/server"
)

var hostile = flag.Int("hostile", 500, "mutated request sequences TestHostileRequests sends")

// rssMB is this process's resident memory.
func rssMB(t *testing.T) float64 {
	t.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc/self/status: %v", err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "VmRSS:"); ok {
			kb, _ := strconv.Atoi(strings.Fields(rest)[0])
			return float64(kb) / 1024
		}
	}
	t.Fatal("no VmRSS in /proc/self/status")
	return 0
}

// mutate changes a few bytes of a seed, or splices two, as a fuzzer would.
func mutate(rng *rand.Rand) []byte {
	in := bytes.Clone(seeds[rng.IntN(len(seeds))])
	switch rng.IntN(4) {
	case 0:
		in = append(in, seeds[rng.IntN(len(seeds))]...)
	case 1:
		if len(in) > 2 {
			i := rng.IntN(len(in) - 1)
			in = append(in[:i], in[i+1+rng.IntN(len(in)-i-1):]...)
		}
	}
	for range 1 + rng.IntN(6) {
		if len(in) > 0 {
			in[rng.IntN(len(in))] = byte(rng.IntN(256))
		}
	}
	return in
}

// Issue 12, defect 5: a huge body is refused with a message and does not stay in
// memory; thousands of mutated request sequences leave the host as the records say,
// and the process no bigger than a few megabytes for it.
func TestHostileRequests(t *testing.T) {
	env := testctl.New(t)
	gate := server.NewGate()
	gate.Open(server.Drivers{Network: driver.New(env.C), IPAM: ipam.New(env.C)})
	srv := httptest.NewServer(server.Handler(server.Capabilities{}, gate, slog.New(slog.DiscardHandler)))
	defer srv.Close()

	runtime.GC()
	debug.FreeOSMemory()
	before := rssMB(t)

	// 100 MB, streamed: the plugin must stop reading at its limit.
	resp, err := http.Post(srv.URL+"/IpamDriver.RequestPool", "application/json",
		io.MultiReader(strings.NewReader(`{"Pool":"`), io.LimitReader(zeros{}, 100<<20), strings.NewReader(`"}`)))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "larger than") {
		t.Fatalf("100 MB body: %d %s; want 400 saying the request is too large", resp.StatusCode, body)
	}
	runtime.GC()
	debug.FreeOSMemory()
	afterBig := rssMB(t)

	rng := rand.New(rand.NewPCG(12, 12))
	for i := range *hostile {
		in := mutate(rng)
		t.Run(fmt.Sprint(i), func(t *testing.T) { runInput(t, in) })
		if t.Failed() {
			t.Fatalf("input %q", in)
		}
	}
	runtime.GC()
	debug.FreeOSMemory()
	after := rssMB(t)
	if afterBig-before > 20 {
		t.Errorf("RSS grew from %.1f to %.1f MB after a 100 MB request", before, afterBig)
	}
	report(t, "100 MB body refused, RSS %.1f → %.1f MB; %d mutated sequences, RSS after %.1f MB", before, afterBig, *hostile, after)
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = '0'
	}
	return len(p), nil
}
