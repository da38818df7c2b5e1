package huawei

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"slices"
	"strings"

	"github.com/huaweicloud/huaweicloud-sdk-go-v3/services/vpc/v2/model"

	"github.com/vpcroute/vpcroute/cloud"
)

// Start-up steps of New: who this ECS is, its port, its route table, the quota
// and the VPC's own ranges.

// resolveIdentity fills the identity from the settings and, for what they do
// not say, from the metadata service.
func (c *Client) resolveIdentity(ctx context.Context, cfg *Config, md *metadataClient) error {
	id := cfg.InstanceID
	project, region, vpcID, portID := cfg.ProjectID, cfg.Region, cfg.VPCID, cfg.PortID
	hostname := cfg.Hostname

	if id == "" || project == "" || region == "" || vpcID == "" || hostname == "" {
		meta, err := md.metaData(ctx)
		switch {
		case err == nil:
			id = firstNonEmpty(id, meta.UUID)
			project = firstNonEmpty(project, meta.ProjectID)
			region = firstNonEmpty(region, meta.RegionID)
			vpcID = firstNonEmpty(vpcID, meta.Meta.VPCID)
			hostname = firstNonEmpty(hostname, meta.Hostname, meta.Name)
		case id == "" || project == "" || region == "" || vpcID == "":
			return identityError(cfg.MetadataURL, err, id, project, region, vpcID, portID)
		}
	}
	if portID == "" {
		p, err := md.primaryPortID(ctx)
		if err != nil {
			return identityError(cfg.MetadataURL, err, id, project, region, vpcID, portID)
		}
		portID = p
	}
	if id == "" || project == "" || region == "" || vpcID == "" {
		return identityError(cfg.MetadataURL, errors.New("the metadata lacks some fields"), id, project, region, vpcID, portID)
	}
	if hostname == "" {
		hostname, _ = os.Hostname()
	}
	c.id = cloud.Identity{InstanceID: id, Hostname: hostname, VPCID: vpcID}
	c.project, c.region, c.portID = project, region, portID
	return nil
}

// identityError says which settings to give when the metadata service did not
// tell who this host is.
func identityError(url string, cause error, id, project, region, vpcID, portID string) error {
	var missing []string
	for _, f := range []struct{ v, name string }{
		{id, "VPCROUTE_INSTANCE_ID"}, {project, "VPCROUTE_PROJECT_ID"}, {region, "VPCROUTE_REGION"},
		{vpcID, "VPCROUTE_VPC_ID"}, {portID, "VPCROUTE_PORT_ID"},
	} {
		if f.v == "" {
			missing = append(missing, f.name)
		}
	}
	return fmt.Errorf("cannot tell which ECS this is: the metadata service at %s did not answer (%v); "+
		"on Huawei Cloud check that the ECS reaches 169.254.169.254, elsewhere set %s "+
		"(and HUAWEICLOUD_SDK_AK/HUAWEICLOUD_SDK_SK), or set VPCROUTE_CLOUD=none for host-only networks without VPC routes",
		url, cause, strings.Join(missing, ", "))
}

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// checkPort reads the primary port: its subnet chooses the route table, and its
// allowed address pairs say whether the source/destination check is on.
func (c *Client) checkPort(ctx context.Context, mode string) error {
	ctx, cancel := context.WithTimeout(ctx, c.t.opTimeout)
	defer cancel()
	p, err := c.api.showPort(ctx, c.portID)
	if err != nil {
		return fmt.Errorf("read the primary port %s of ECS %s: %w", c.portID, c.id.InstanceID, err)
	}
	c.subnet = p.NetworkID
	c.srcDst = !hasSrcDstOff(p.Pairs)
	if !c.srcDst {
		return nil
	}
	if mode != SrcDstCheckDisable {
		c.log.Warn("the source/destination check is ON for this ECS's port: containers on other hosts will not reach "+
			"containers here; turn it off (ECS console > the instance > Network Interfaces > Source/Destination Check) "+
			"or set VPCROUTE_SRC_DST_CHECK=disable", "port", c.portID)
		return nil
	}
	pairs := append(slices.Clone(p.Pairs), model.AllowedAddressPair{IpAddress: srcDstOffPair})
	np, err := c.api.updatePortPairs(ctx, c.portID, pairs)
	if err != nil {
		return fmt.Errorf("turn off the source/destination check of port %s (VPCROUTE_SRC_DST_CHECK=disable): %w", c.portID, err)
	}
	c.srcDst = !hasSrcDstOff(np.Pairs)
	c.log.Info("turned off the source/destination check of this ECS's port", "port", c.portID)
	return nil
}

func hasSrcDstOff(pairs []model.AllowedAddressPair) bool {
	for _, p := range pairs {
		if p.IpAddress == srcDstOffPair {
			return true
		}
	}
	return false
}

// chooseTable picks the route table: the configured one, else the one
// associated with this ECS's subnet, else the VPC's default.
func (c *Client) chooseTable(ctx context.Context, configured string) error {
	ctx, cancel := context.WithTimeout(ctx, c.t.opTimeout)
	defer cancel()
	all, err := c.api.listRouteTables(ctx, c.id.VPCID, "")
	if err != nil {
		return fmt.Errorf("list the route tables of VPC %s: %w", c.id.VPCID, err)
	}
	ids := make([]string, 0, len(all))
	def := ""
	for _, t := range all {
		ids = append(ids, t.ID)
		if t.Default {
			def = t.ID
		}
	}
	c.setTables(ids)
	switch {
	case configured != "":
		if !slices.Contains(ids, configured) {
			return fmt.Errorf("route table %s (VPCROUTE_ROUTE_TABLE_ID) is not a route table of VPC %s: pick one of %s, or unset it to use the table of this ECS's subnet",
				configured, c.id.VPCID, strings.Join(ids, ", "))
		}
		c.tableID = configured
		return nil
	case c.subnet != "":
		assoc, err := c.api.listRouteTables(ctx, c.id.VPCID, c.subnet)
		if err != nil {
			return fmt.Errorf("find the route table of subnet %s: %w", c.subnet, err)
		}
		for _, t := range assoc {
			if slices.Contains(ids, t.ID) {
				c.tableID = t.ID
				return nil
			}
		}
	}
	if def == "" {
		return fmt.Errorf("VPC %s has no default route table and none is associated with subnet %s: set VPCROUTE_ROUTE_TABLE_ID", c.id.VPCID, c.subnet)
	}
	c.tableID = def
	return nil
}

// readQuota learns how many routes a table may hold. Without the permission
// to read quotas vpcroute still works; it then learns of a full table only
// when the API refuses a route.
func (c *Client) readQuota(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, c.t.opTimeout)
	defer cancel()
	q, err := c.api.routeQuota(ctx)
	if err != nil {
		c.log.Warn("could not read the route quota; a full route table will be noticed only when a claim fails", "error", err)
		return
	}
	c.quota = q
}

// resolveVPCCIDRs sets the VPC's own ranges: the setting, else the local routes
// (minus Huawei's system ranges), else the VPC's subnets.
func (c *Client) resolveVPCCIDRs(ctx context.Context, configured []netip.Prefix, tables map[string][]route) error {
	if len(configured) > 0 {
		c.id.VPCCIDRs = slices.Clone(configured)
		return nil
	}
	var cidrs []netip.Prefix
	for _, id := range slices.Sorted(maps.Keys(tables)) {
		for _, r := range tables[id] {
			if p, ok := r.destination(); ok && r.isLocal() && !isSystemRange(p) && !slices.Contains(cidrs, p) {
				cidrs = append(cidrs, p)
			}
		}
	}
	if len(cidrs) == 0 {
		ctx, cancel := context.WithTimeout(ctx, c.t.opTimeout)
		defer cancel()
		subnets, err := c.api.listSubnetCIDRs(ctx, c.id.VPCID)
		if err != nil {
			return fmt.Errorf("find the VPC's address ranges (or set VPCROUTE_VPC_CIDRS): %w", err)
		}
		cidrs = subnets
	}
	slices.SortFunc(cidrs, comparePrefix)
	c.id.VPCCIDRs = cidrs
	return nil
}
