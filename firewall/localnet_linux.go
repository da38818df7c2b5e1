//go:build linux

package firewall

import (
	"errors"
	"fmt"
	"os"
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

// ensureBridgeFiltering makes traffic between two ports of one bridge pass through
// iptables (net.bridge.bridge-nf-call-iptables, as Docker sets it), without which
// enable_icc=false cannot stop containers of one network reaching each other.
func ensureBridgeFiltering() error {
	const name = "net/bridge/bridge-nf-call-iptables"
	v, err := sysctl.Get(name)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("enable_icc=false needs the kernel module br_netfilter, which is not loaded: run `modprobe br_netfilter` on the host (and list it in /etc/modules-load.d), or leave icc on")
	}
	if err != nil || v == "1" {
		return err
	}
	return sysctl.Set(name, "1")
}
