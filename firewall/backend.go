package firewall

import (
	"bufio"
	"bytes"
	"strings"
)

// Backends of iptables: the nf_tables-based iptables-nft, or the legacy
// x_tables one. Rules added with one are invisible to the other, so vpcroute
// must use whichever Docker and the rest of the host use.
const (
	BackendNFT    = "nft"
	BackendLegacy = "legacy"
)

// commandOutput runs a command and returns its standard output.
type commandOutput func(name string, args ...string) ([]byte, error)

// detectBackend picks the iptables backend the host uses, the way the
// Kubernetes iptables wrapper does: the one whose save command shows more
// rules wins; with no rules either way (or a tie), the backend the plain
// `iptables` command reports in its version string.
func detectBackend(run commandOutput) string {
	legacy := countRules(run("iptables-legacy-save"))
	nft := countRules(run("iptables-nft-save"))
	switch {
	case legacy > nft:
		return BackendLegacy
	case nft > legacy:
		return BackendNFT
	}
	out, err := run("iptables", "--version")
	if err == nil && strings.Contains(string(out), "nf_tables") {
		return BackendNFT
	}
	// iptables before 1.8 prints no backend and is always legacy.
	return BackendLegacy
}

// countRules counts rule lines ("-A ...") in iptables-save output; a failed
// command counts as no rules.
func countRules(out []byte, err error) int {
	if err != nil && len(out) == 0 {
		return 0
	}
	n := 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "-") {
			n++
		}
	}
	return n
}
