package controller

import (
	"fmt"
	"net/netip"

	"sort"
	"strconv"
	"strings"

	"github.com/vpcroute/vpcroute/cloud"
	"github.com/vpcroute/vpcroute/firewall"
)

// The -o options of `docker network create` vpcroute understands, named as Docker's
// bridge driver names them.
const (
	OptBridgeName = "com.docker.network.bridge.name"
	OptMTU        = "com.docker.network.driver.mtu"
	OptMasquerade = "com.docker.network.bridge.enable_ip_masquerade"
	// OptOutsidePool (also an --ipam-opt) lets a subnet outside VPCROUTE_POOL be
	// used: the user means it.
	OptOutsidePool = "vpcroute.outside-pool"
	// OptTakeover (also an --ipam-opt) moves the subnet's route from the ECS whose
	// vpcroute network holds it: true when that ECS is stopped or deleted, force
	// even while it runs.
	OptTakeover = "vpcroute.takeover"
	// OptICC=false: the network's containers do not reach each other, as with
	// Docker's bridge driver.
	OptICC = "com.docker.network.bridge.enable_icc"
	// OptIsolate=true: only the network itself opens connections to its
	// containers (published ports aside), from this host and from the VPC.
	OptIsolate = "vpcroute.isolate"
	// OptAllow is the network's edge policy: which sources may open connections
	// to its containers (see ParseAllow).
	OptAllow = "vpcroute.allow"
)

// knownOptions says what each option does, for the error about an unknown one.
var knownOptions = map[string]string{
	OptBridgeName:  "the bridge's name (at most 15 characters)",
	OptMTU:         "the MTU of the bridge and veths (default: the uplink's)",
	OptMasquerade:  "true/false: masquerade traffic to destinations outside the VPC",
	OptOutsidePool: "true: use a subnet outside VPCROUTE_POOL (other hosts masquerade traffic to it)",
	OptTakeover:    "true/force: move the --subnet's route here from the ECS whose vpcroute network holds it (true: only when that ECS is stopped or deleted)",
	OptICC:         "false: containers of the network do not reach each other (published ports still work)",
	OptIsolate:     "true: only the network itself opens connections to its containers, from this host and from the VPC (published ports still work)",
	OptAllow:       "CIDR[,CIDR...][:tcp/PORT,udp/PORT,icmp...][;...]: only these sources open connections to the network's containers",
}

// Options are a network's -o options, parsed.
type Options struct {
	Bridge      string
	MTU         int
	Masquerade  bool
	OutsidePool bool
	Takeover    cloud.Takeover
	NoICC       bool
	Isolate     bool
	// Allow is vpcroute.allow as given (checked by ParseAllow).
	Allow string
}

// ParseOptions reads a network's -o options. Anything vpcroute does not know is an
// error rather than silently ignored.
func ParseOptions(opts map[string]string) (Options, error) {
	o := Options{Masquerade: true}
	for _, k := range sortedKeys(opts) {
		v := strings.TrimSpace(opts[k])
		switch k {
		case OptBridgeName:
			// '%' too: the kernel expands "%d" in a new link's name.
			if v == "" || len(v) > 15 || strings.ContainsAny(v, "/:% \t") {
				return o, fmt.Errorf("option %s=%q: a bridge name has 1 to 15 characters without '/', ':', '%%' or spaces", k, v)
			}
			o.Bridge = v
		case OptMTU:
			n, err := strconv.Atoi(v)
			if err != nil || n < 68 || n > 65535 {
				return o, fmt.Errorf("option %s=%q: give an MTU from 68 to 65535", k, v)
			}
			o.MTU = n
		case OptMasquerade, OptOutsidePool:
			b, err := strconv.ParseBool(v)
			if err != nil {
				return o, fmt.Errorf("option %s=%q: give true or false", k, v)
			}
			if k == OptMasquerade {
				o.Masquerade = b
			} else {
				o.OutsidePool = b
			}
		case OptICC, OptIsolate:
			b, err := strconv.ParseBool(v)
			if err != nil {
				return o, fmt.Errorf("option %s=%q: give true or false", k, v)
			}
			if k == OptICC {
				o.NoICC = !b
			} else {
				o.Isolate = b
			}
		case OptAllow:
			if _, err := ParseAllow(v); err != nil {
				return o, fmt.Errorf("option %s: %w", k, err)
			}
			o.Allow = v
		case OptTakeover:
			t, err := ParseTakeover(v)
			if err != nil {
				return o, fmt.Errorf("option %s: %w", k, err)
			}
			o.Takeover = t
		default:
			var names []string
			for n, what := range knownOptions {
				names = append(names, n+" ("+what+")")
			}
			sort.Strings(names)
			return o, fmt.Errorf("option %q is not known to vpcroute: remove it; known options are %s", k, strings.Join(names, ", "))
		}
	}
	if o.Isolate && o.Allow != "" {
		return o, fmt.Errorf("options %s and %s exclude each other: isolate lets nothing in, allow lets some sources in; give one", OptIsolate, OptAllow)
	}
	return o, nil
}

// ParseAllow reads a vpcroute.allow value: entries separated by ";", each a list
// of source ranges (CIDR, or an address) separated by ",", optionally followed by
// ":" and the ports they may reach (tcp/PORT, udp/PORT, sctp/PORT, icmp for pings),
// separated by ",". Without ports a source reaches every port.
//
//	192.168.0.0/24                     the VPC subnet, any port
//	10.0.3.0/24,192.168.0.10:tcp/80    two sources, TCP port 80 only
//	0.0.0.0/0:tcp/443;10.0.0.0/8       anyone to 443, the pool to anything
func ParseAllow(v string) ([]firewall.Allow, error) {
	bad := func(format string, args ...any) ([]firewall.Allow, error) {
		return nil, fmt.Errorf("%q: "+format+"; the form is CIDR[,CIDR...][:tcp/PORT,udp/PORT,icmp...][;...], e.g. 192.168.0.0/24:tcp/80,icmp", append([]any{v}, args...)...)
	}
	var out []firewall.Allow
	for _, entry := range strings.Split(v, ";") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		srcs, ports, _ := strings.Cut(entry, ":")
		var ps []firewall.AllowPort
		for _, tok := range strings.Split(ports, ",") {
			tok = strings.ToLower(strings.TrimSpace(tok))
			if tok == "" {
				continue
			}
			if tok == "icmp" {
				ps = append(ps, firewall.AllowPort{Proto: "icmp"})
				continue
			}
			proto, port, ok := strings.Cut(tok, "/")
			n, err := strconv.ParseUint(port, 10, 16)
			if !ok || (proto != "tcp" && proto != "udp" && proto != "sctp") || err != nil || n == 0 {
				return bad("port %q is not tcp/PORT, udp/PORT, sctp/PORT or icmp", tok)
			}
			ps = append(ps, firewall.AllowPort{Proto: proto, Port: uint16(n)})
		}
		for _, src := range strings.Split(srcs, ",") {
			src = strings.TrimSpace(src)
			p, err := netip.ParsePrefix(src)
			if err != nil {
				a, aerr := netip.ParseAddr(src)
				if aerr != nil || !a.Is4() {
					return bad("source %q is not an IPv4 address or CIDR", src)
				}
				p = netip.PrefixFrom(a, 32)
			}
			if !p.Addr().Is4() {
				return bad("source %q is not IPv4", src)
			}
			out = append(out, firewall.Allow{Source: p.Masked(), Ports: ps})
		}
	}
	if len(out) == 0 {
		return bad("no source given")
	}
	return out, nil
}

// mustAllow is ParseAllow of a value ParseOptions accepted before (empty: none).
func mustAllow(v string) []firewall.Allow {
	if v == "" {
		return nil
	}
	a, _ := ParseAllow(v)
	return a
}

// ParseTakeover reads a vpcroute.takeover value: true, force, or false.
func ParseTakeover(v string) (cloud.Takeover, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "force":
		return cloud.TakeoverForce, nil
	case "true", "1", "yes":
		return cloud.TakeoverStopped, nil
	case "false", "0", "no", "":
		return cloud.NoTakeover, nil
	}
	return cloud.NoTakeover, fmt.Errorf("%q: give true (from a stopped or deleted ECS), force (from a running one too) or false", v)
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
