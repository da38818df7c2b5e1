// Package firewall owns vpcroute's iptables rules: the rules that let routed
// container traffic through Docker's FORWARD DROP policy, masquerade traffic
// leaving the VPC, isolate internal networks and publish container ports, and
// the route_localnet setting that publishing on 127.0.0.1 needs.
//
// Everything vpcroute makes is recognisable as its own, so that cleanup never
// removes what a person or another tool made: its chains are named VPCROUTE-*,
// the rules it keeps in chains that are not its own carry a "vpcroute" or
// "vpcroute:<networkID>" comment, and a jump into one of its chains says by its
// target whose it is (what packets walk carries no comment). Every step is an
// idempotent ensure that tolerates rules that already exist or are already
// gone, and the background repair (Check, Sync) compares everything with one
// read per table and rewrites only what differs.
//
// Layout: one jump from each built-in chain vpcroute needs leads into a base
// chain of its own (VPCROUTE-FORWARD, -INPUT, -POSTROUTING; -DNAT and -PORTS
// only while a port is published). Each network's rules live in chains named
// from its ID (VPCROUTE-E-, -F-, -I-, -P-, -N-<first 16 hex digits>), reached
// from the base chains, so that one iptables-restore writes or removes a whole
// network atomically: a network create costs one iptables process instead of
// two per rule. Published ports are single rules in VPCROUTE-DNAT, added and
// removed one at a time.
//
// VPCROUTE-FORWARD starts with the jumps of internal networks (their drops
// win over everything), then a fast path that accepts packets of established
// connections to or from the container pool, so that only a connection's
// first packet walks the networks' chains: where it leaves its bridge
// (VPCROUTE-EGRESS) or enters one (VPCROUTE-INGRESS).
//
// VPCROUTE-POSTROUTING starts with the guard of published ports (while there
// are some), then one accept for connections from the pool to the pool, which
// are never masqueraded (see poolShortcut), then each network's dispatch by
// source subnet to its masquerade.
//
// Methods act on the network namespace of the calling thread: iptables
// commands are executed from it.
package firewall
