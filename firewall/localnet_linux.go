//go:build linux

package firewall

import (
	"path/filepath"

	"github.com/vpcroute/vpcroute/sysctl"
)

// setRouteLocalnet sets net.ipv4.conf.<dev>.route_localnet, which lets the
// kernel route packets with a 127.0.0.0/8 source out of dev (needed to
// publish ports on 127.0.0.1) and accept replies to them. It belongs with the
// rules because it is safe only while the INPUT guard of the network's chains
// is in place.
func setRouteLocalnet(dev string, on bool) error {
	v := "0"
	if on {
		v = "1"
	}
	return sysctl.Set(filepath.Join("net/ipv4/conf", dev, "route_localnet"), v)
}
