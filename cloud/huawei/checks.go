package huawei

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/vpcroute/vpcroute/check"
	"github.com/vpcroute/vpcroute/cloud"
)

// Clock skew past which the API refuses signatures, and past which doctor warns.
const (
	maxSkew  = 15 * time.Minute
	warnSkew = time.Minute
)

// Checks reads what `vpcroute doctor` checks of Huawei Cloud: the metadata service,
// the credentials and every read permission vpcroute uses, the NIC's
// source/destination check, whether the NIC's security groups let the container pool
// in, routes to instances that are gone, the route quota, and the host's clock
// against the API's. It never writes: the update permissions are said to be checked
// only by a write.
func (c *Client) Checks(ctx context.Context, pool netip.Prefix) []check.Result {
	ctx, cancel := context.WithTimeout(ctx, c.t.opTimeout)
	defer cancel()
	var out []check.Result
	add := func(r check.Result) { out = append(out, r) }

	if c.usesMetadata {
		if _, err := c.md.metaData(ctx); err != nil {
			add(check.Result{Name: "metadata service", Status: check.Fail, Detail: err.Error(),
				Fix: "this ECS must reach " + c.md.base + " (its route via the subnet's gateway, no firewall in the way); or set VPCROUTE_INSTANCE_ID, VPCROUTE_PROJECT_ID, VPCROUTE_REGION, VPCROUTE_VPC_ID, VPCROUTE_PORT_ID and an AK/SK"})
		} else {
			add(check.Result{Name: "metadata service", Status: check.Pass, Detail: "answers at " + c.md.base})
		}
	} else {
		add(check.Result{Name: "metadata service", Status: check.Skip, Detail: "not used: the identity and the AK/SK come from the settings"})
	}

	// One read per permission vpcroute needs; the first also proves the credentials.
	var p port
	var table routeTable
	reads := []struct {
		action string
		read   func() error
	}{
		{"vpc:routeTables:get", func() (err error) { table, err = c.api.showRouteTable(ctx, c.tableID); return err }},
		{"vpc:routeTables:list", func() error { _, err := c.api.listRouteTables(ctx, c.id.VPCID, ""); return err }},
		{"vpc:quotas:list", func() error { _, err := c.api.routeQuota(ctx); return err }},
		{"vpc:ports:get", func() (err error) { p, err = c.api.showPort(ctx, c.portID); return err }},
		{"vpc:subnets:get", func() error { _, err := c.api.listSubnetCIDRs(ctx, c.id.VPCID); return err }},
	}
	creds := "the AK/SK of the settings"
	if c.agency {
		creds = "the ECS agency's temporary credentials"
	}
	for i, r := range reads {
		err := r.read()
		if i == 0 {
			switch {
			case hasStatus(err, http.StatusUnauthorized):
				add(check.Result{Name: "credentials", Status: check.Fail, Detail: err.Error(), Fix: "fix the credentials (see the detail); vpcroute cannot use the VPC API"})
				return append(out, c.clockCheck())
			case err != nil && !hasStatus(err, http.StatusForbidden):
				add(check.Result{Name: "VPC API", Status: check.Fail, Detail: err.Error(), Fix: "check that this ECS reaches the VPC endpoint (VPCROUTE_VPC_ENDPOINT)"})
				return append(out, c.clockCheck())
			default:
				add(check.Result{Name: "credentials", Status: check.Pass, Detail: "accepted: " + creds})
			}
		}
		add(permissionCheck(r.action, err, creds))
	}
	// Only a takeover without force reads other ECSs' state: without the permission
	// everything else works.
	_, err := c.api.serverStatus(ctx, c.id.InstanceID)
	ecsRead := permissionCheck("ecs:cloudServers:get", err, creds)
	if ecsRead.Status == check.Fail {
		ecsRead.Status = check.Warn
		ecsRead.Fix += "; only vpcroute.takeover=true needs it, to tell that the ECS it takes a subnet from is stopped"
	}
	add(ecsRead)
	add(check.Result{Name: "permission vpc:routeTables:update", Status: check.Skip,
		Detail: "only a write can tell; `docker network create` makes one and says if it is refused"})

	if p.ID != "" {
		add(srcDstCheck(hasSrcDstOff(p.Pairs), c.portID))
		add(c.securityGroupCheck(ctx, p.SecurityGroups, pool))
	}
	if table.ID != "" {
		add(quotaCheck(customCount(table.Routes), c.quota, c.tableID))
		add(c.goneCheck(ctx, table.Routes))
	}
	return append(out, c.clockCheck())
}

func permissionCheck(action string, err error, creds string) check.Result {
	name := "permission " + action
	switch {
	case err == nil:
		return check.Result{Name: name, Status: check.Pass}
	case hasStatus(err, http.StatusForbidden):
		return check.Result{Name: name, Status: check.Fail, Detail: err.Error(),
			Fix: fmt.Sprintf("grant %s to %s (IAM: a custom policy with the actions of README.md, Permissions)", action, creds)}
	}
	return check.Result{Name: name, Status: check.Warn, Detail: "could not tell: " + err.Error()}
}

func srcDstCheck(off bool, portID string) check.Result {
	if off {
		return check.Result{Name: "source/destination check", Status: check.Pass, Detail: "off on port " + portID}
	}
	return check.Result{Name: "source/destination check", Status: check.Fail, Detail: "ON on port " + portID + ": the VPC drops the containers' traffic of this ECS",
		Fix: "turn it off (ECS console > the instance > Network Interfaces > Source/Destination Check), or set VPCROUTE_SRC_DST_CHECK=disable"}
}

func quotaCheck(used, quota int, tableID string) check.Result {
	name := "route quota"
	switch {
	case quota <= 0:
		return check.Result{Name: name, Status: check.Skip, Detail: fmt.Sprintf("route table %s holds %d routes; the quota could not be read", tableID, used)}
	case used >= quota:
		return check.Result{Name: name, Status: check.Fail, Detail: fmt.Sprintf("route table %s is full: %d of %d routes", tableID, used, quota),
			Fix: "raise routetableContainRoutes (console: My Quotas), remove unused routes, or use another route table (VPCROUTE_ROUTE_TABLE_ID)"}
	case float64(used) > quotaWarnFraction*float64(quota):
		return check.Result{Name: name, Status: check.Warn, Detail: fmt.Sprintf("route table %s holds %d of %d routes", tableID, used, quota),
			Fix: "raise routetableContainRoutes (console: My Quotas) before it fills"}
	}
	return check.Result{Name: name, Status: check.Pass, Detail: fmt.Sprintf("%d of %d routes used in %s", used, quota, tableID)}
}

// securityGroupCheck says whether the NIC's security groups let traffic in from the
// container pool: containers on other ECSs keep their own addresses across the VPC.
func (c *Client) securityGroupCheck(ctx context.Context, groups []string, pool netip.Prefix) check.Result {
	name := "security groups"
	var rules []sgRule
	for _, g := range groups {
		rs, err := c.api.listSecurityGroupRules(ctx, g)
		if hasStatus(err, http.StatusForbidden) {
			return check.Result{Name: name, Status: check.Skip, Detail: "cannot read security group rules: " + err.Error(),
				Fix: "grant vpc:securityGroupRules:get to let doctor check them, or check by hand that they allow " + pool.String()}
		}
		if err != nil {
			return check.Result{Name: name, Status: check.Warn, Detail: "could not read security group " + g + ": " + err.Error()}
		}
		rules = append(rules, rs...)
	}
	status, detail := sgAllows(rules, pool)
	r := check.Result{Name: name, Status: status, Detail: detail + " (groups " + strings.Join(groups, ", ") + ")"}
	if status != check.Pass {
		r.Fix = fmt.Sprintf("add an inbound rule for %s (all protocols, or what your containers serve) to the security group of every ECS with containers", pool)
	}
	return r
}

// sgAllows says how the rules let the container pool in: Pass when one inbound
// rule lets every protocol in from a range holding the whole pool, Warn otherwise.
func sgAllows(rules []sgRule, pool netip.Prefix) (string, string) {
	var partial []string
	for _, r := range rules {
		if r.Direction != "ingress" || (r.Ethertype != "" && r.Ethertype != "IPv4") || r.RemoteIPPrefix == "" {
			continue
		}
		p, err := netip.ParsePrefix(r.RemoteIPPrefix)
		if err != nil || !p.Overlaps(pool) {
			continue
		}
		whole := p.Bits() <= pool.Bits() && p.Contains(pool.Addr())
		if whole && r.Protocol == "" {
			return check.Pass, fmt.Sprintf("inbound from %s, all protocols, holds the container pool %s", p, pool)
		}
		what := r.Protocol
		if what == "" {
			what = "all protocols"
		}
		if r.PortMin > 0 {
			what += fmt.Sprintf(" %d-%d", r.PortMin, r.PortMax)
		}
		partial = append(partial, fmt.Sprintf("%s from %s", what, p))
	}
	if len(partial) > 0 {
		return check.Warn, fmt.Sprintf("only %s let traffic in from the container pool %s", strings.Join(partial, "; "), pool)
	}
	return check.Warn, fmt.Sprintf("no inbound rule lets traffic in from the container pool %s: containers on other ECSs cannot reach containers here", pool)
}

// goneCheck lists vpcroute routes whose next hop is an instance that no longer exists.
func (c *Client) goneCheck(ctx context.Context, routes []route) check.Result {
	name := "routes to instances that are gone"
	gone, err := c.goneHops(ctx, routes)
	if err != nil {
		return check.Result{Name: name, Status: check.Skip, Detail: err.Error()}
	}
	var stale []string
	for _, r := range routes {
		if _, ok := parseDescription(r.Description); ok && gone[r.NextHop] {
			stale = append(stale, r.Destination+" to "+r.NextHop)
		}
	}
	if len(stale) == 0 {
		return check.Result{Name: name, Status: check.Pass, Detail: "every vpcroute route leads to an instance of the VPC"}
	}
	slices.Sort(stale)
	return check.Result{Name: name, Status: check.Warn, Detail: "vpcroute routes to deleted instances: " + strings.Join(stale, ", "),
		Fix: "`vpcroute gc --apply` removes them"}
}

// goneHops reads which next hops of vpcroute's routes (other than this instance) are
// instances with no port left: deleted ECSs.
func (c *Client) goneHops(ctx context.Context, routes []route) (map[string]bool, error) {
	gone := map[string]bool{}
	seen := map[string]bool{c.id.InstanceID: true}
	for _, r := range routes {
		if r.Type != routeTypeECS || seen[r.NextHop] {
			continue
		}
		if _, ok := parseDescription(r.Description); !ok {
			continue
		}
		seen[r.NextHop] = true
		ports, err := c.api.listPortsOf(ctx, r.NextHop)
		if err != nil {
			return nil, fmt.Errorf("could not tell which instances are gone: %w", err)
		}
		gone[r.NextHop] = len(ports) == 0
	}
	return gone, nil
}

// clockCheck compares the host's clock with the API's Date header.
func (c *Client) clockCheck() check.Result {
	name := "clock"
	server, local := c.api.serverTime()
	if server.IsZero() {
		return check.Result{Name: name, Status: check.Skip, Detail: "the VPC API gave no Date header"}
	}
	skew := local.Sub(server).Round(time.Second)
	detail := fmt.Sprintf("this host's clock is %s off the VPC API's", skew.Abs())
	switch {
	case skew.Abs() > maxSkew:
		return check.Result{Name: name, Status: check.Fail, Detail: detail + ": signatures are refused past 15 minutes",
			Fix: "set the clock right (chrony or systemd-timesyncd)"}
	case skew.Abs() > warnSkew:
		return check.Result{Name: name, Status: check.Warn, Detail: detail, Fix: "set the clock right (chrony or systemd-timesyncd) before it drifts past 15 minutes"}
	}
	return check.Result{Name: name, Status: check.Pass, Detail: detail}
}

// ReleaseGone removes a vpcroute route whose next hop is an instance that no longer
// exists, after reading the table and the instance's ports again.
func (c *Client) ReleaseGone(ctx context.Context, tr cloud.TableRoute) error {
	ctx, cancel := context.WithTimeout(ctx, c.t.opTimeout)
	defer cancel()
	if tr.NextHop == c.id.InstanceID {
		return errors.New("the route leads to this ECS: release it as this ECS's own")
	}
	match := func(r route) bool {
		d, marked := parseDescription(r.Description)
		return marked && d.Owner == tr.Owner && r.NextHop == tr.NextHop && r.Type == routeTypeECS
	}
	vet := func(route) error {
		ports, err := c.api.listPortsOf(ctx, tr.NextHop)
		if err != nil {
			return fmt.Errorf("check that instance %s is gone: %w", tr.NextHop, err)
		}
		if len(ports) > 0 {
			return fmt.Errorf("instance %s exists: its route %s is its own", tr.NextHop, tr.Destination)
		}
		return nil
	}
	what := fmt.Sprintf("release the route of %s to the deleted instance %s", tr.Destination, tr.NextHop)
	if err := c.deleteRoute(ctx, tr.Destination, what, match, vet); err != nil {
		return err
	}
	c.log.Info("released a vpcroute route to a deleted instance", "subnet", tr.Destination, "next_hop", tr.NextHop, "owner", tr.Owner)
	return nil
}
