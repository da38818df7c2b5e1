package controller

import (
	"errors"
	"fmt"
	"maps"
	"sync/atomic"
	"time"

	"github.com/vpcroute/vpcroute/firewall"
	"github.com/vpcroute/vpcroute/link"
	"github.com/vpcroute/vpcroute/state"
)

// The kernel's side of the loop. What every live network needs of the kernel (its
// bridge, its rules, its published ports, vpcroute's base rules) is compared with
// what the kernel holds in two reads of iptables and one of links and addresses,
// whatever the number of networks, without holding mu: Docker's calls never wait for
// the comparison. Only when something is out of line does the repair take mu, read
// again and write, in one iptables-restore per table. After a reboot that is one
// restore for every network at once.

// kernelWant is what the kernel should hold for the live networks, and how many
// endpoints wait for their leftovers to be removed (a DeleteEndpoint that could not
// finish). Call with mu held.
func (c *Controller) kernelWant() (firewall.Want, []link.BridgeSpec, int, error) {
	want := firewall.Want{Base: c.base()}
	nets, err := c.store.Networks()
	if err != nil {
		return want, nil, 0, err
	}
	gone := 0
	var bridges []link.BridgeSpec
	for _, n := range nets {
		if n.Creating || n.Deleting || c.busy[n.ID] > 0 {
			continue // a Docker call or the loop is making or removing it
		}
		bridges = append(bridges, bridgeSpec(n))
		want.Networks = append(want.Networks, c.rules(n))
		eps, err := c.store.Endpoints(n.ID)
		if err != nil {
			return want, nil, 0, err
		}
		for _, ep := range eps {
			if ep.Gone {
				gone++
				continue
			}
			for _, p := range ep.Ports {
				want.Ports = append(want.Ports, portMap(n, ep, p))
			}
		}
	}
	return want, bridges, gone, nil
}

func bridgeSpec(n state.Network) link.BridgeSpec {
	return link.BridgeSpec{Name: n.Bridge, NetworkID: n.ID, Gateway: n.Gateway, MTU: n.MTU}
}

// KernelReport is what a repair of the kernel found and did.
type KernelReport struct {
	// Bridges are the bridges that were missing or not as they should be;
	// Rules what of the rules was.
	Bridges []string
	Rules   firewall.Drift
}

// Empty says the kernel was in line.
func (r KernelReport) Empty() bool { return len(r.Bridges) == 0 && r.Rules.Empty() }

func (r KernelReport) String() string {
	s := r.Rules.String()
	if len(r.Bridges) > 0 {
		if s != "" {
			s += "; "
		}
		s += fmt.Sprintf("bridges %v", r.Bridges)
	}
	return s
}

// RepairKernel is one kernel pass of the loop: it compares, without mu, and
// repairs, with mu, only what differs.
func (c *Controller) RepairKernel() (KernelReport, error) { return c.repairKernel() }

// repairKernel compares, without mu, and repairs, with mu, only what differs.
func (c *Controller) repairKernel() (KernelReport, error) {
	uplink := c.links.Uplink() // netlink reads: before mu
	others := c.readPoolOthers()
	c.mu.Lock()
	if c.uninstalled {
		c.mu.Unlock()
		return KernelReport{}, nil
	}
	c.uplink, c.poolOthers = uplink, others
	want, bridges, gone, err := c.kernelWant()
	c.mu.Unlock()
	if err != nil {
		return KernelReport{}, err
	}
	start := time.Now()
	bad, berr := c.bridgesOutOfLine(bridges)
	drift, ferr := c.fw.Check(want)
	if berr == nil && ferr == nil && len(bad) == 0 && drift.Empty() && gone == 0 {
		c.log.Debug("kernel in line", "networks", len(want.Networks), "took", time.Since(start).Round(time.Microsecond))
		return KernelReport{}, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.uninstalled {
		return KernelReport{}, nil
	}
	return c.syncKernel()
}

// editedLinks counts vpcroute's own edits of bridges: the watcher announces them
// only a moment later, and a loop pass in that moment must not trust what it read
// before them.
type editedLinks struct {
	Links
	edits *atomic.Uint64
}

func (l editedLinks) EnsureBridge(s link.BridgeSpec) error {
	defer l.edits.Add(1)
	return l.Links.EnsureBridge(s)
}

func (l editedLinks) DeleteBridge(name, networkID string) error {
	defer l.edits.Add(1)
	return l.Links.DeleteBridge(name, networkID)
}

// linkGen moves whenever the links may have changed: announced by the kernel, or
// edited by vpcroute. Only with cfg.LinkChanges.
func (c *Controller) linkGen() uint64 { return c.cfg.LinkChanges.Gen() + c.linkEdits.Load() }

// bridgesOutOfLine is links.BridgesOutOfLine, skipped while no link or address has
// changed since these bridges were last found in line.
func (c *Controller) bridgesOutOfLine(bridges []link.BridgeSpec) ([]string, error) {
	key := fmt.Sprint(bridges)
	var gen uint64
	if c.cfg.LinkChanges != nil {
		gen = c.linkGen()
		c.mu.Lock()
		same := c.seen.inLine && c.seen.inLineGen == gen && c.seen.want == key
		c.mu.Unlock()
		if same {
			return nil, nil
		}
	}
	bad, err := c.links.BridgesOutOfLine(bridges)
	if c.cfg.LinkChanges != nil {
		c.mu.Lock()
		c.seen.inLine, c.seen.inLineGen, c.seen.want = err == nil && len(bad) == 0, gen, key
		c.mu.Unlock()
	}
	return bad, err
}

// markedBridges is links.Bridges, read again only after links changed.
func (c *Controller) markedBridges() (map[string]string, error) {
	var gen uint64
	if c.cfg.LinkChanges != nil {
		gen = c.linkGen()
		c.mu.Lock()
		cached := c.seen.bridges
		fresh := cached != nil && c.seen.bridgesGen == gen
		c.mu.Unlock()
		if fresh {
			return maps.Clone(cached), nil
		}
	}
	bridges, err := c.links.Bridges()
	if err == nil && c.cfg.LinkChanges != nil {
		c.mu.Lock()
		c.seen.bridges, c.seen.bridgesGen = maps.Clone(bridges), gen
		c.mu.Unlock()
	}
	return bridges, err
}

// syncKernel repairs the kernel for every live network: the bridges that are not as
// they should be, then every rule in one restore per table. Call with mu held.
func (c *Controller) syncKernel() (KernelReport, error) {
	var errs []error
	errs = append(errs, c.removeGoneEndpoints())
	want, bridges, _, err := c.kernelWant()
	if err != nil {
		return KernelReport{}, err
	}
	var r KernelReport
	bad, err := c.links.BridgesOutOfLine(bridges)
	if err != nil {
		errs = append(errs, err)
		bad = nil
		for _, b := range bridges {
			bad = append(bad, b.Name)
		}
	}
	for _, b := range bridges {
		for _, name := range bad {
			if b.Name == name {
				if err := c.links.EnsureBridge(b); err != nil {
					errs = append(errs, fmt.Errorf("bridge %s: %w", b.Name, err))
				}
				r.Bridges = append(r.Bridges, b.Name)
			}
		}
	}
	r.Rules, err = c.fw.Sync(want)
	if err != nil {
		errs = append(errs, fmt.Errorf("rules: %w", err))
	}
	if !r.Empty() {
		c.log.Info("kernel brought back in line", "what", r.String(), "networks", len(want.Networks))
	}
	return r, errors.Join(errs...)
}

// removeGoneEndpoints removes what endpoints whose DeleteEndpoint could not finish
// left behind (their ports' rules, their veth), and forgets them. Call with mu held.
func (c *Controller) removeGoneEndpoints() error {
	nets, err := c.store.Networks()
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range nets {
		eps, err := c.store.Endpoints(n.ID)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, ep := range eps {
			if !ep.Gone {
				continue
			}
			if err := c.removeEndpointObjects(n, ep); err != nil {
				errs = append(errs, err)
				continue
			}
			errs = append(errs, c.store.DeleteEndpoint(n.ID, ep.ID))
		}
	}
	return errors.Join(errs...)
}
