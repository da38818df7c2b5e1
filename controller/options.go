package controller

import (
	"fmt"

	"github.com/vpcroute/vpcroute/cloud"
	"sort"
	"strconv"
	"strings"
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
)

// knownOptions says what each option does, for the error about an unknown one.
var knownOptions = map[string]string{
	OptBridgeName:  "the bridge's name (at most 15 characters)",
	OptMTU:         "the MTU of the bridge and veths (default: the uplink's)",
	OptMasquerade:  "true/false: masquerade traffic to destinations outside the VPC",
	OptOutsidePool: "true: use a subnet outside VPCROUTE_POOL (other hosts masquerade traffic to it)",
	OptTakeover:    "true/force: move the --subnet's route here from the ECS whose vpcroute network holds it (true: only when that ECS is stopped or deleted)",
}

// Options are a network's -o options, parsed.
type Options struct {
	Bridge      string
	MTU         int
	Masquerade  bool
	OutsidePool bool
	Takeover    cloud.Takeover
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
	return o, nil
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
