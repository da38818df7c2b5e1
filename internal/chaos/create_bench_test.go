package chaos

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// BenchmarkCreateModes is `docker network create --ipam-driver vpcroute` against
// the emulated VPC (real SDK, the plugin over HTTP as Docker calls it, an in-memory
// kernel), a route per network vs host blocks (VPCROUTE_HOST_BLOCK=20), for an
// ECS's first network and for its 100th. It reports the VPC API's reads and writes
// per create (the emulator's request log) and the time of the create as Docker
// waits for it, the emulator answering on localhost at once.
func BenchmarkCreateModes(b *testing.B) {
	for _, mode := range []struct {
		name  string
		block int
	}{{"per-network", 0}, {"block", 20}} {
		for _, existing := range []int{0, 99} {
			b.Run(fmt.Sprintf("%s/%s", mode.name, map[int]string{0: "1st", 99: "100th"}[existing]), func(b *testing.B) {
				benchCreate(b, mode.block, existing)
			})
		}
	}
}

func benchCreate(b *testing.B, block, existing int) {
	o := Options{ECSs: 1, HostBlock: block, BlockGrace: time.Hour, Pool: netip.MustParsePrefix("10.0.0.0/8"),
		RouteQuota: 1000, Unscaled: true, KernelInterval: time.Hour, CloudInterval: time.Hour, OrphanGrace: time.Hour}
	bed := func() *Bed {
		bd, err := New(o, b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		for i := range existing {
			if _, err := bd.ECS[0].Docker.Create(fmt.Sprintf("n%d", i), netip.Prefix{}, true); err != nil {
				b.Fatal(err)
			}
		}
		// The loop's start-up cycle reads the route table: let it finish first.
		for n := -1; n != len(bd.Sim.Requests()); {
			n = len(bd.Sim.Requests())
			time.Sleep(100 * time.Millisecond)
		}
		return bd
	}
	var reads, writes int
	var took time.Duration
	bd := bed()
	defer func() { bd.Close() }()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		if existing == 0 && i > 0 {
			// The ECS's first network, every time: a new ECS.
			bd.Close()
			bd = bed()
		}
		bd.Sim.ResetRequests()
		b.StartTimer()
		t0 := time.Now()
		n, err := bd.ECS[0].Docker.Create(fmt.Sprintf("x%d", i), netip.Prefix{}, true)
		took += time.Since(t0)
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range bd.Sim.Requests() {
			if !strings.Contains(r.Path, "/routetables") {
				continue
			}
			if r.Method == "GET" {
				reads++
			} else {
				writes++
			}
		}
		if existing > 0 {
			if err := bd.ECS[0].Docker.Remove(n); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
	}
	b.StopTimer()
	nf := float64(b.N)
	b.ReportMetric(float64(reads)/nf, "api-reads/op")
	b.ReportMetric(float64(writes)/nf, "api-writes/op")
	b.ReportMetric(float64(took.Microseconds())/nf/1000, "create-ms/op")
}
