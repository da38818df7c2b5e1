package testbed

import "regexp"

var hopRE = regexp.MustCompile(`(?m)^\s*\d+\s+(\S+)`)

// TraceHops returns the hop addresses of a busybox `traceroute -n` output, in order
// ("*" for a hop that did not answer).
func TraceHops(out string) []string {
	var hops []string
	for _, m := range hopRE.FindAllStringSubmatch(out, -1) {
		hops = append(hops, m[1])
	}
	return hops
}
