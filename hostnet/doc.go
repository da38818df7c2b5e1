// Package hostnet owns the host kernel objects of the vpcroute Docker
// network driver: one Linux bridge per network, the veth pairs that attach
// containers to it, the sysctls routing needs, and the iptables rules that
// let routed traffic through Docker's FORWARD DROP policy, masquerade
// traffic leaving the VPC and publish container ports.
//
// Everything here is marked as vpcroute's so that cleanup never removes what
// a person or another tool made: bridges carry the link alias
// "vpcroute:<networkID>", veth host ends "vpcroute:veth", and every iptables
// rule a "vpcroute:<networkID>" comment ("vpcroute" for the jumps into
// vpcroute's own chains). Every step is an idempotent ensure that tolerates
// objects that already exist or are already gone, so callers can re-run it
// to repair drift.
//
// Functions act on the network namespace of the calling thread. Callers that
// switch namespaces must lock the OS thread first; commands such as iptables
// are executed from the calling thread and so run in the same namespace.
package hostnet
