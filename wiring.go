package main

import (
	"github.com/vpcroute/vpcroute/driver"
	"github.com/vpcroute/vpcroute/hostnet"
)

// kernelLinks adapts package hostnet's functions to driver.Links.
type kernelLinks struct{}

func (kernelLinks) EnsureBridge(s hostnet.BridgeSpec) error  { return hostnet.EnsureBridge(s) }
func (kernelLinks) DeleteBridge(name, id string) error       { return hostnet.DeleteBridge(name, id) }
func (kernelLinks) OwnedBridges() (map[string]string, error) { return hostnet.OwnedBridges() }
func (kernelLinks) DeleteVeth(host string) error             { return hostnet.DeleteVeth(host) }
func (kernelLinks) UplinkMTU() int                           { return hostnet.UplinkMTU() }
func (kernelLinks) EnsureVeth(h, p, br string, mtu int) error {
	return hostnet.EnsureVeth(h, p, br, mtu)
}

var _ driver.Links = kernelLinks{}
