// Package testbed builds, on one Linux machine, a small copy of the Huawei Cloud setup that
// vpcroute runs in: a VPC router, up to three ECS hosts each with its own Docker Engine, and an
// "outside" host standing for the internet. End-to-end tests, `make demo` and benchmarks use it
// so that they exercise real kernels, real dockerd and real iptables without a cloud account.
//
// # Topology
//
//	          <prefix>-net (outside, 203.0.113.2)
//	                 | wan0 203.0.113.1
//	          <prefix>-vpc (VPC router: bridge vpc0 192.168.0.1/24, 169.254.169.254 on lo)
//	        /        |        \
//	<prefix>-ecs1  -ecs2     -ecs3      eth0 192.168.0.2, .3, .4; default via 192.168.0.1
//	  dockerd        dockerd   dockerd  (one engine per ECS, own mount namespace)
//
// All of it lives in network namespaces named after Config.Prefix (default "vr"); nothing is
// changed in the root network namespace, so a dockerd running there is left alone.
//
// The router namespace plays the VPC fabric: it forwards between ECSs and to the outside, it
// adds one to the TTL of every packet arriving from an ECS (the real VPC does not decrement TTL,
// which is why the guide's traceroute shows no hop for the fabric and ping reads ttl=62), it
// sends no ICMP redirects, and bridged frames skip iptables. Routes for container subnets are
// not installed here: whoever plays the VPC route table adds them to the router namespace
// (the sim's --router-netns, or RouterNetns by hand as in the guide).
//
// The outside host routes only 192.168.0.0/24 back, like the internet reaching an ECS through
// its EIP: traffic from container addresses that nobody masqueraded gets no answer there.
//
// # Engines
//
// Each ECS runs its own dockerd. A "holder" process (sleep) keeps a private mount namespace
// per ECS alive in which /run is a fresh tmpfs (so the engine sees only its own
// /run/docker/plugins, its own containerd and its own xtables lock) and /etc/docker is a
// per-ECS directory. dockerd and every plugin started with ECS.StartPlugin enter that mount
// namespace and the ECS network namespace with nsenter (not `ip netns exec`, which remounts
// /sys and breaks dockerd's cgroup detection). Because the mount namespace belongs to the
// holder, RestartDocker restarts the engine without losing the plugin sockets, as on a real
// host. Files in that namespace are reachable from the test as ECS.HostPath(p).
//
// # Images
//
// No registry is needed: Up imports into each engine an image vrbox:latest built from Debian's
// busybox-static. It has sh, ping, traceroute, nc, ip and httpd; its default command serves
// /www (an index.html naming the ECS) on port 80. Busybox wget segfaults in such an image
// (static glibc looks for NSS libraries that are absent): use nc for HTTP, see HTTPGetCmd.
//
// # Running commands
//
// Exec runs a program in any of the bed's network namespaces (RouterExec, OutsideExec for
// the two fixed ones); ECS.Exec runs it on an ECS as a shell there would, in the ECS's
// network and mount namespaces; ECS.Docker runs Debian's docker CLI against the ECS's engine.
// InNetns runs Go code in a namespace, for example to listen as the outside host or as the
// metadata service (169.254.169.254 is on the router's loopback).
//
// Note on the guide: Docker's own bridge driver masquerades container traffic leaving an
// ECS, so in the guide's setup ECS 2 sees ECS 1's address and answers it directly across the
// VPC bridge; only the forward path crosses the router. Without that NAT (vpcroute's case)
// replies cross the router too, and the TTL rule is what keeps ping at ttl=62 both ways.
//
// # Concurrent beds
//
// Beds with different prefixes (and state directories, which follow the prefix by default)
// are independent. Up and Down of a prefix remove any bed of that prefix, so each test
// package should use a prefix of its own; `vpcroute-bed` uses "vr".
//
// # Cleaning up
//
// Down removes everything a bed with the same prefix and state directory may have left,
// whether or not Up finished: processes are found by the network namespaces they run in and
// by the cgroups dockerd puts containers in, not by saved PIDs, so a crashed run is cleaned
// up too. Up always starts with such a Down.
package testbed
