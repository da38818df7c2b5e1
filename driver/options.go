package driver

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Options Docker passes to CreateNetwork.
const (
	genericOption  = "com.docker.network.generic"
	internalOption = "com.docker.network.internal"

	optBridgeName = "com.docker.network.bridge.name"
	optMTU        = "com.docker.network.driver.mtu"
	optMasquerade = "com.docker.network.bridge.enable_ip_masquerade"
)

// knownOptions are the -o options vpcroute understands; anything else is an error
// rather than silently ignored.
var knownOptions = map[string]string{
	optBridgeName: "the bridge's name (at most 15 characters)",
	optMTU:        "the MTU of the bridge and veths (default: the uplink's)",
	optMasquerade: "true/false: masquerade traffic to destinations outside the VPC",
}

type networkOptions struct {
	bridge     string
	mtu        int
	masquerade bool
	internal   bool
}

func parseNetworkOptions(opts map[string]interface{}) (networkOptions, error) {
	o := networkOptions{masquerade: true}
	if v, ok := opts[internalOption].(bool); ok {
		o.internal = v
	}
	generic, _ := opts[genericOption].(map[string]interface{})
	for k, raw := range generic {
		v := strings.TrimSpace(fmt.Sprint(raw))
		switch k {
		case optBridgeName:
			if v == "" || len(v) > 15 || strings.ContainsAny(v, "/: \t") {
				return o, fmt.Errorf("option %s=%q: a bridge name has 1 to 15 characters without '/', ':' or spaces", k, v)
			}
			o.bridge = v
		case optMTU:
			n, err := strconv.Atoi(v)
			if err != nil || n < 68 || n > 65535 {
				return o, fmt.Errorf("option %s=%q: give an MTU from 68 to 65535", k, v)
			}
			o.mtu = n
		case optMasquerade:
			b, err := strconv.ParseBool(v)
			if err != nil {
				return o, fmt.Errorf("option %s=%q: give true or false", k, v)
			}
			o.masquerade = b
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
