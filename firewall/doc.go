// Package firewall owns vpcroute's iptables rules: the rules that let routed
// container traffic through Docker's FORWARD DROP policy, masquerade traffic
// leaving the VPC, isolate internal networks and publish container ports, and
// the route_localnet setting that publishing on 127.0.0.1 needs.
//
// Every rule is marked as vpcroute's so that cleanup never removes what a
// person or another tool made: a "vpcroute:<networkID>" comment, or
// "vpcroute" for the jumps into vpcroute's base chains. Every step is an
// idempotent ensure that tolerates rules that already exist or are already
// gone, so callers can re-run it to repair drift.
//
// Layout: one marked jump from each built-in chain vpcroute needs leads into
// a base chain of its own (VPCROUTE-FORWARD, -INPUT, -DNAT, -POSTROUTING).
// Each network's rules live in chains named from its ID (VPCROUTE-F-, -I-,
// -P-, -N-<first 16 hex digits>), reached by marked jumps from the base
// chains, so that one iptables-restore writes or removes a whole network
// atomically: a network create costs one iptables process instead of two per
// rule. Published ports are single rules in VPCROUTE-DNAT, added and removed
// one at a time.
//
// VPCROUTE-FORWARD starts with the jumps of internal networks (their drops
// win over everything), then a fast path that accepts packets of established
// connections to or from the container pool, so that only a connection's
// first packets walk the per-network jumps that follow, one per network in
// creation order.
//
// Methods act on the network namespace of the calling thread: iptables
// commands are executed from it.
package firewall
