package chaos

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/vpcroute/vpcroute/driver"
	"github.com/vpcroute/vpcroute/internal/testctl"
	"github.com/vpcroute/vpcroute/ipam"
	"github.com/vpcroute/vpcroute/server"
)

// calls are the plugin API's paths, numbered for the fuzzer.
var calls = []string{
	"/Plugin.Activate",
	"/IpamDriver.GetCapabilities",
	"/IpamDriver.GetDefaultAddressSpaces",
	"/IpamDriver.RequestPool",
	"/IpamDriver.ReleasePool",
	"/IpamDriver.RequestAddress",
	"/IpamDriver.ReleaseAddress",
	"/NetworkDriver.GetCapabilities",
	"/NetworkDriver.CreateNetwork",
	"/NetworkDriver.DeleteNetwork",
	"/NetworkDriver.AllocateNetwork",
	"/NetworkDriver.FreeNetwork",
	"/NetworkDriver.CreateEndpoint",
	"/NetworkDriver.DeleteEndpoint",
	"/NetworkDriver.EndpointOperInfo",
	"/NetworkDriver.Join",
	"/NetworkDriver.Leave",
	"/NetworkDriver.DiscoverNew",
	"/NetworkDriver.DiscoverDelete",
	"/NetworkDriver.ProgramExternalConnectivity",
	"/NetworkDriver.RevokeExternalConnectivity",
}

// A fuzz input is a sequence of calls separated by "\n;\n": each is the call's
// number (one byte) and its body. In bodies, $POOL, $SUBNET, $GW and $ADDR stand for
// the last pool Docker was given, its gateway and the last address, and $NET and $EP
// for fixed network and endpoint IDs, so
// that the fuzzer can reach the handlers' deeper paths.
const sep = "\n;\n"

const (
	fuzzNet = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	fuzzEP  = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
)

func seq(parts ...string) []byte { return []byte(strings.Join(parts, sep)) }

func call(name, body string) string {
	for i, c := range calls {
		if c == "/"+name {
			return string(rune(i)) + body
		}
	}
	panic("no call " + name)
}

// seeds are the calls Docker makes for a network's life, and inputs that found
// defects (issue 12).
var seeds = [][]byte{
	seq(call("IpamDriver.RequestPool", `{"AddressSpace":"vpcroute-local","Pool":"","Options":{}}`),
		call("IpamDriver.RequestAddress", `{"PoolID":"$POOL","Options":{"RequestAddressType":"com.docker.network.gateway"}}`),
		call("NetworkDriver.CreateNetwork", `{"NetworkID":"$NET","Options":{"com.docker.network.generic":{}},"IPv4Data":[{"AddressSpace":"vpcroute-local","Pool":"$SUBNET","Gateway":"$GW"}]}`),
		call("IpamDriver.RequestAddress", `{"PoolID":"$POOL","Address":""}`),
		call("NetworkDriver.CreateEndpoint", `{"NetworkID":"$NET","EndpointID":"$EP","Interface":{"Address":"$ADDR"}}`),
		call("NetworkDriver.Join", `{"NetworkID":"$NET","EndpointID":"$EP","SandboxKey":"/var/run/docker/netns/x"}`),
		call("NetworkDriver.ProgramExternalConnectivity", `{"NetworkID":"$NET","EndpointID":"$EP","Options":{"com.docker.network.portmap":[{"Proto":6,"HostPort":8080,"Port":80}]}}`),
		call("NetworkDriver.Leave", `{"NetworkID":"$NET","EndpointID":"$EP"}`),
		call("NetworkDriver.DeleteEndpoint", `{"NetworkID":"$NET","EndpointID":"$EP"}`),
		call("NetworkDriver.DeleteNetwork", `{"NetworkID":"$NET"}`),
		call("IpamDriver.ReleasePool", `{"PoolID":"$POOL"}`)),
	seq(call("NetworkDriver.CreateNetwork", `{"NetworkID":"$NET","Options":{"com.docker.network.generic":{"com.docker.network.bridge.name":"br%d"}},"IPv4Data":[{"AddressSpace":"LocalDefault","Pool":"10.0.7.0/24","Gateway":"10.0.7.1/24"}]}`)),
	seq(call("NetworkDriver.CreateNetwork", `{"NetworkID":"../../x","IPv4Data":[{"Pool":"10.0.8.0/24","Gateway":"10.0.58.1/8"}]}`)),
	seq(call("IpamDriver.RequestPool", `{"Pool":"224.0.0.0/24"}`), call("IpamDriver.RequestPool", `{"Pool":"255.255.255.248/29"}`)),
	seq(call("IpamDriver.RequestPool", `{"Pool":"10.0.9.0/24"} trailing`)),
	seq(call("NetworkDriver.Join", `{"NetworkID":"","EndpointID":""}`)),
}

// FuzzPluginAPI sends sequences of plugin calls, valid and not, to a whole plugin
// (both APIs, the controller, an in-memory kernel and route table). Whatever it
// sends: no panic, every answer is JSON, every failure says why, and afterwards the
// kernel objects and routes are exactly those of vpcroute's records.
func FuzzPluginAPI(f *testing.F) {
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(runInput)
}

// runInput runs one fuzz input on a fresh plugin and checks what it leaves.
func runInput(t *testing.T, input []byte) {
	env := testctl.New(t)
	gate := server.NewGate()
	gate.Open(server.Drivers{Network: driver.New(env.C), IPAM: ipam.New(env.C)})
	h := server.Handler(server.Capabilities{}, gate, slog.New(slog.DiscardHandler))
	vars := map[string]string{"$NET": fuzzNet, "$EP": fuzzEP}
	for _, part := range bytes.Split(input, []byte(sep)) {
		if len(part) == 0 {
			continue
		}
		path := calls[int(part[0])%len(calls)]
		body := string(part[1:])
		for k, v := range vars {
			body = strings.ReplaceAll(body, k, v)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, path, strings.NewReader(body)))
		checkAnswer(t, path, body, rec)
		if path == "/IpamDriver.RequestPool" && rec.Code == http.StatusOK {
			var r struct{ PoolID, Pool string }
			if json.Unmarshal(rec.Body.Bytes(), &r) == nil {
				vars["$POOL"], vars["$SUBNET"] = r.PoolID, r.Pool
			}
		}
		if path == "/IpamDriver.RequestAddress" && rec.Code == http.StatusOK {
			var r struct{ Address string }
			if json.Unmarshal(rec.Body.Bytes(), &r) == nil {
				if vars["$GW"] == "" {
					vars["$GW"] = r.Address
				}
				vars["$ADDR"] = r.Address
			}
		}
	}
	if diffs := hostMatchesRecords(env); len(diffs) > 0 {
		t.Fatalf("after %q:\n  %s", input, strings.Join(diffs, "\n  "))
	}
}

// checkAnswer: every answer is one JSON value; a failure is 4xx or 5xx with an Err
// that says something, and a success has no Err.
func checkAnswer(t *testing.T, path, body string, rec *httptest.ResponseRecorder) {
	t.Helper()
	var answer map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &answer); err != nil {
		t.Fatalf("%s %q: answer %d %q is not a JSON object: %v", path, body, rec.Code, rec.Body.String(), err)
	}
	msg, hasErr := answer["Err"].(string)
	switch {
	case rec.Code == http.StatusOK && hasErr && msg != "":
		t.Fatalf("%s %q: 200 with Err %q", path, body, msg)
	case rec.Code != http.StatusOK && (len(msg) < 10):
		t.Fatalf("%s %q: %d with Err %q: a failure must say why", path, body, rec.Code, msg)
	case rec.Code >= 300 && rec.Code < 400, rec.Code >= 600:
		t.Fatalf("%s %q: status %d", path, body, rec.Code)
	}
}

// hostMatchesRecords says how the in-memory kernel and route table differ from the
// records: a bridge, rule set or route that no record owns is a leak; a live
// network without its bridge, rules or route is broken.
func hostMatchesRecords(env *testctl.Env) []string {
	var diffs []string
	nets, _ := env.DB.Networks()
	pools, _ := env.DB.Pools()
	owners := map[string]bool{}
	for _, p := range pools {
		owners[p.RouteOwner()] = true
	}
	bridges, rules := env.Host.ByNetwork()
	env.Host.Lock()
	foreign := len(env.Host.Foreign)
	env.Host.Unlock()
	for _, n := range nets {
		if n.ClaimOwner != "" {
			owners[n.ClaimOwner] = true
		}
		if n.Creating || n.Deleting {
			delete(bridges, n.ID)
			delete(rules, n.ID)
			continue
		}
		if _, ok := bridges[n.ID]; !ok {
			diffs = append(diffs, fmt.Sprintf("network %s has no bridge", short(n.ID)))
		}
		if !rules[n.ID] {
			diffs = append(diffs, fmt.Sprintf("network %s has no rules", short(n.ID)))
		}
		delete(bridges, n.ID)
		delete(rules, n.ID)
	}
	for id, br := range bridges {
		diffs = append(diffs, fmt.Sprintf("bridge %s of network %s that no record has", br, short(id)))
	}
	for id := range rules {
		diffs = append(diffs, fmt.Sprintf("rules of network %s that no record has", short(id)))
	}
	if foreign > 0 {
		diffs = append(diffs, fmt.Sprintf("%d links not marked as vpcroute's were made", foreign))
	}
	env.VPC.Lock()
	for prefix, r := range env.VPC.Routes {
		if r.Owner != "" && !owners[r.Owner] {
			diffs = append(diffs, fmt.Sprintf("route %s of owner %s that no record has", prefix, r.Owner))
		}
	}
	env.VPC.Unlock()
	return diffs
}
