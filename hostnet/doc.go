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
// vpcroute's base chains). Every step is an idempotent ensure that tolerates
// objects that already exist or are already gone, so callers can re-run it
// to repair drift.
//
// iptables layout: one marked jump from each built-in chain vpcroute needs
// leads into a base chain of its own (VPCROUTE-FORWARD, -INPUT, -DNAT,
// -POSTROUTING). Each network's rules live in chains named from its ID
// (VPCROUTE-F-, -I-, -P-, -N-<first 16 hex digits>), reached by marked
// jumps from the base chains, so that one iptables-restore writes or
// removes a whole network atomically: a network create costs one iptables
// process instead of two per rule. Published ports are single rules in
// VPCROUTE-DNAT, added and removed one at a time.
//
// VPCROUTE-FORWARD starts with the jumps of internal networks (their drops
// win over everything), then a fast path that accepts packets of
// established connections to or from the container pool, so that only a
// connection's first packets walk the per-network jumps that follow, one
// per network in creation order.
//
// Functions act on the network namespace of the calling thread. Callers that
// switch namespaces must lock the OS thread first; commands such as iptables
// are executed from the calling thread and so run in the same namespace.
package hostnet
