//go:build linux

package firewall

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/vpcroute/vpcroute/link"
)

// BenchmarkEnsurePort publishes and unpublishes one port next to 10 and to
// 200 already published ports. EnsurePort and DeletePort check and change
// one rule (-C, then -A or -D) and never list a chain, so the time per
// operation should not grow with the number of ports:
//
//	go test -run '^$' -bench EnsurePort -benchtime 100x ./firewall
func BenchmarkEnsurePort(b *testing.B) {
	for _, backend := range backends(b) {
		for _, existing := range []int{10, 200} {
			b.Run(fmt.Sprintf("%s/existing=%d", backend, existing), func(b *testing.B) {
				f := testFirewall(b, backend)
				testBridge(b, "vr-net1", "net1", "10.0.2.1/24")
				mustDo(b, f.EnsureNetwork(net1))
				port := func(i int) PortMap {
					return PortMap{
						NetworkID: "net1", Proto: "tcp", HostPort: uint16(10000 + i), Bridge: "vr-net1",
						ContainerIP: netip.AddrFrom4([4]byte{10, 0, 2, byte(2 + i%250)}), ContainerPort: 80,
					}
				}
				for i := range existing {
					mustDo(b, f.EnsurePort(port(i)))
				}
				p := port(existing)
				b.ResetTimer()
				for range b.N {
					if err := f.EnsurePort(p); err != nil {
						b.Fatal(err)
					}
					if err := f.DeletePort(p); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkEnsureNetwork creates and deletes one network, the host side of
// `docker network create` and `docker network rm`, next to 0 and to 30
// other networks. Besides ns/op (all of it) it reports, per operation:
//
//	create-ms     EnsureBridge + EnsureNetwork: the budget is 20 ms
//	ensurenet-ms  EnsureNetwork alone
//	rerun-ms      EnsureNetwork again with nothing to do (the driver's
//	              periodic repair does this for every network)
//	deletenet-ms  DeleteNetwork
//	delete-ms     DeleteNetwork + DeleteBridge
//
// Run it with:
//
//	go test -run '^$' -bench EnsureNetwork -benchtime 20x ./firewall
func BenchmarkEnsureNetwork(b *testing.B) {
	for _, backend := range backends(b) {
		for _, others := range []int{0, 30} {
			b.Run(fmt.Sprintf("%s/others=%d", backend, others), func(b *testing.B) {
				f := testFirewall(b, backend)
				spec := func(i int) (link.BridgeSpec, NetworkRules) {
					sum := sha256.Sum256([]byte{byte(i)})
					id := hex.EncodeToString(sum[:]) // like Docker's: 64 random hex digits
					subnet := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 1, byte(i), 0}), 24)
					br := link.BridgeSpec{Name: fmt.Sprintf("vr-b%d", i), NetworkID: id, Gateway: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 1, byte(i), 1}), 24), MTU: 1500}
					return br, NetworkRules{NetworkID: id, Bridge: br.Name, Subnet: subnet, Masquerade: true, NoNAT: noNAT}
				}
				for i := range others {
					br, r := spec(i)
					mustDo(b, host.EnsureBridge(br))
					mustDo(b, f.EnsureNetwork(r))
				}
				var create, ensure, rerun, deleteNet, del time.Duration
				b.ResetTimer()
				for i := range b.N {
					// A new network each time, as `docker network create`
					// makes: reusing a bridge name just deleted would time
					// the kernel's clean-up of the old one.
					br, r := spec(others + i%(250-others))
					t0 := time.Now()
					mustDo(b, host.EnsureBridge(br))
					t1 := time.Now()
					mustDo(b, f.EnsureNetwork(r))
					t2 := time.Now()
					mustDo(b, f.EnsureNetwork(r))
					t3 := time.Now()
					mustDo(b, f.DeleteNetwork(r))
					t4 := time.Now()
					mustDo(b, host.DeleteBridge(br.Name, br.NetworkID))
					t5 := time.Now()
					create += t2.Sub(t0)
					ensure += t2.Sub(t1)
					rerun += t3.Sub(t2)
					deleteNet += t4.Sub(t3)
					del += t5.Sub(t3)
				}
				ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(b.N) }
				b.ReportMetric(ms(create), "create-ms/op")
				b.ReportMetric(ms(ensure), "ensurenet-ms/op")
				b.ReportMetric(ms(rerun), "rerun-ms/op")
				b.ReportMetric(ms(deleteNet), "deletenet-ms/op")
				b.ReportMetric(ms(del), "delete-ms/op")
			})
		}
	}
}

// BenchmarkEnsureBase re-runs EnsureBase with its jumps and fast path in place, as the
// driver does every 30 seconds, with and without setting the FORWARD
// policy:
//
//	go test -run '^$' -bench EnsureBase -benchtime 50x ./firewall
func BenchmarkEnsureBase(b *testing.B) {
	for _, backend := range backends(b) {
		for _, accept := range []bool{false, true} {
			b.Run(fmt.Sprintf("%s/accept=%v", backend, accept), func(b *testing.B) {
				f := testFirewall(b, backend)
				mustDo(b, f.EnsureBase(Base{ForwardAccept: accept, Pool: testPool}))
				b.ResetTimer()
				for range b.N {
					if err := f.EnsureBase(Base{ForwardAccept: accept, Pool: testPool}); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
