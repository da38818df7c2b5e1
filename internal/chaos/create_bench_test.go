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

// BenchmarkRouteTableUse is how many routes N ECSs with 16 networks each take in the
// VPC route table, a route per network vs host blocks of /20 (16 networks of /24
// each): the table's default quota is 200. One op is the whole fleet's creates.
func BenchmarkRouteTableUse(b *testing.B) {
	const perECS = 16
	// A route per network stops at 50 ECSs: 200 would be 3,200 routes, beyond
	// even the VPC's 1,000 (and the emulator's one table then answers each write
	// with all of them).
	for _, mode := range []struct {
		name  string
		block int
		ecss  []int
	}{{"per-network", 0, []int{10, 50}}, {"block", 20, []int{10, 50, 200}}} {
		for _, ecss := range mode.ecss {
			b.Run(fmt.Sprintf("%s/ecs=%d", mode.name, ecss), func(b *testing.B) {
				routes := 0
				for i := 0; i < b.N; i++ {
					b.StopTimer()
					bd, err := New(Options{ECSs: ecss, HostBlock: mode.block, BlockGrace: time.Hour, Pool: netip.MustParsePrefix("10.0.0.0/8"),
						RouteQuota: 10000, Unscaled: true, KernelInterval: time.Hour, CloudInterval: time.Hour, OrphanGrace: time.Hour}, b.TempDir())
					if err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
					errs := each(bd, 50, func(e *ECS) error {
						for k := range perECS {
							if _, err := e.Docker.Create(fmt.Sprintf("%s-%d", e.Name, k), netip.Prefix{}, true); err != nil {
								return err
							}
						}
						return nil
					})
					b.StopTimer()
					if len(errs) > 0 {
						b.Fatal(errs[0])
					}
					routes = len(customRoutes(bd))
					bd.Close()
				}
				b.ReportMetric(float64(routes), "routes")
				b.ReportMetric(float64(routes)/200, "tables-of-200")
			})
		}
	}
}
