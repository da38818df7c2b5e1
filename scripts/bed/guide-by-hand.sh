#!/bin/sh
# guide-by-hand.sh: Huawei's guide done by hand, with Docker's own bridge driver, on a bed
# made by `vpcroute-bed up`: what vpcroute automates. Prints the ping and traceroute the
# guide shows (ttl=62; 10.0.2.1 -> 192.168.0.3 -> 10.0.3.2) and the HTTP answers, then
# removes what it created (the bed stays up). Needs root.
set -eu
here=$(dirname "$0")
prefix=${PREFIX:-vr}
d() { "$here/docker-on" "$@"; }
router() { nsenter --net="/run/netns/$prefix-vpc" -- "$@"; }
on() { ecs=$1; shift; nsenter --net="/run/netns/$prefix-$ecs" -- "$@"; }

cleanup() {
	for e in ecs1 ecs2; do
		d $e rm -f nginx >/dev/null 2>&1 || true
		d $e network rm my-net >/dev/null 2>&1 || true
		on $e iptables -w -P FORWARD DROP 2>/dev/null || true
	done
	router ip route del 10.0.2.0/24 2>/dev/null || true
	router ip route del 10.0.3.0/24 2>/dev/null || true
}
trap cleanup EXIT

set -x
d ecs1 network create --subnet 10.0.2.0/24 my-net
d ecs2 network create --subnet 10.0.3.0/24 my-net
d ecs1 run -d --name nginx --net my-net -p 8080:80 vrbox:latest
d ecs2 run -d --name nginx --net my-net -p 8080:80 vrbox:latest
# The VPC route table: one route per container subnet, next hop its ECS.
router ip route replace 10.0.2.0/24 via 192.168.0.2
router ip route replace 10.0.3.0/24 via 192.168.0.3
# Docker sets FORWARD to DROP; the guide opens it.
on ecs1 iptables -w -P FORWARD ACCEPT
on ecs2 iptables -w -P FORWARD ACCEPT
d ecs1 exec nginx traceroute -n -q 1 -w 2 10.0.3.2
d ecs1 exec nginx ping -c 3 -W 2 10.0.3.2
d ecs1 exec nginx sh -c "printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 5 10.0.3.2 80"
d ecs1 exec nginx sh -c "printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 5 192.168.0.3 8080"
