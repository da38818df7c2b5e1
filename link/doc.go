// Package link owns the host's link layer as vpcroute uses it: one Linux bridge
// per network, the veth pairs that attach containers to it, the uplink (its MTU
// and subnets), the host's routes that a new subnet must not overlap, and IP
// forwarding.
//
// Everything it creates is marked so that cleanup never removes what a person
// or another tool made: bridges carry the link alias "vpcroute:<networkID>",
// veth host ends "vpcroute:veth". Every step is an idempotent ensure that
// tolerates links that already exist or are already gone and re-reads what it
// made before trusting a name.
//
// Functions act on the network namespace of the calling thread. Callers that
// switch namespaces must lock the OS thread first.
package link
