//go:build linux

package hostnet

import (
	"fmt"
	"net/netip"
	"testing"
)

// BenchmarkEnsurePort publishes and unpublishes one port next to 10 and to
// 200 already published ports. EnsurePort and DeletePort check and change
// one rule (-C, then -A or -D) and never list a chain, so the time per
// operation should not grow with the number of ports:
//
//	go test -run '^$' -bench EnsurePort -benchtime 100x ./hostnet
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
