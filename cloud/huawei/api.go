package huawei

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	hccore "github.com/huaweicloud/huaweicloud-sdk-go-v3/core"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/auth/basic"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/config"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/impl"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/sdkerr"
	ecs "github.com/huaweicloud/huaweicloud-sdk-go-v3/services/ecs/v2"
	ecsmodel "github.com/huaweicloud/huaweicloud-sdk-go-v3/services/ecs/v2/model"
	ecsregion "github.com/huaweicloud/huaweicloud-sdk-go-v3/services/ecs/v2/region"
	vpc "github.com/huaweicloud/huaweicloud-sdk-go-v3/services/vpc/v2"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/services/vpc/v2/model"
	vpcregion "github.com/huaweicloud/huaweicloud-sdk-go-v3/services/vpc/v2/region"
)

// route is one route of a route table as the API shows it.
type route struct {
	Type, Destination, NextHop, Description string
}

// routeTable is a table with its routes.
type routeTable struct {
	ID      string
	Default bool
	Routes  []route
	// Shown says Routes is the table as an update's answer showed it (reads
	// always show it).
	Shown bool
}

// port is what vpcroute needs of a NIC's port.
type port struct {
	ID             string
	NetworkID      string // the subnet's ID in the v1 API
	Pairs          []model.AllowedAddressPair
	SecurityGroups []string
}

// sgRule is what doctor needs of a security group rule.
type sgRule struct {
	Direction, Ethertype, Protocol string // Protocol "" means any
	PortMin, PortMax               int32
	RemoteIPPrefix, RemoteGroupID  string
}

// vpcAPI is the part of the VPC API vpcroute uses. Every method retries
// transient failures itself and returns *APIError otherwise.
type vpcAPI interface {
	listRouteTables(ctx context.Context, vpcID, subnetID string) ([]routeTable, error)
	showRouteTable(ctx context.Context, id string) (routeTable, error)
	// updateRouteTable applies one change and returns the table as the answer
	// shows it right after the change (the API answers with the whole table).
	updateRouteTable(ctx context.Context, id string, add, del []route) (routeTable, error)
	routeQuota(ctx context.Context) (int, error)
	showPort(ctx context.Context, id string) (port, error)
	updatePortPairs(ctx context.Context, id string, pairs []model.AllowedAddressPair) (port, error)
	listSubnetCIDRs(ctx context.Context, vpcID string) ([]netip.Prefix, error)
	listPortsOf(ctx context.Context, instanceID string) ([]port, error)
	listSecurityGroupRules(ctx context.Context, groupID string) ([]sgRule, error)
	// serverStatus is an instance's state in the ECS API (ACTIVE, SHUTOFF, ...),
	// serverDeleted when the instance does not exist.
	serverStatus(ctx context.Context, id string) (string, error)
	// serverTime is the API's clock as its last answer's Date header gave it, and
	// the local time of that answer; zero before any answer.
	serverTime() (server, local time.Time)
}

// sdkAPI calls the VPC API through the official SDK. The SDK's calls take no
// context, so each attempt gets a fresh SDK client whose transport binds the
// request to a per-attempt context: cancellation and deadlines then work, and
// credentials can change between attempts without touching a shared client.
// Building one costs a few small allocations; connections are pooled by the
// shared transport.
type sdkAPI struct {
	endpoint string
	// ecsEndpoint is the ECS API's, for the state of an ECS whose route a
	// takeover would move.
	ecsEndpoint string
	transport   http.RoundTripper
	creds       credentialSource
	log         *slog.Logger
	t           timing
	clock       serverClock
}

// serverClock keeps the Date header of the API's last answer: signatures fail when
// the host's clock is more than 15 minutes off, and doctor says so before they do.
type serverClock struct {
	mu            sync.Mutex
	server, local time.Time
}

func (c *serverClock) note(resp *http.Response) {
	d, err := http.ParseTime(resp.Header.Get("Date"))
	if err != nil {
		return
	}
	c.mu.Lock()
	c.server, c.local = d, time.Now()
	c.mu.Unlock()
}

func (a *sdkAPI) serverTime() (time.Time, time.Time) {
	a.clock.mu.Lock()
	defer a.clock.mu.Unlock()
	return a.clock.server, a.clock.local
}

// ctxTransport sends every request with ctx, so that an attempt can be
// abandoned when the caller gives up, and notes the API's clock.
type ctxTransport struct {
	ctx   context.Context
	base  http.RoundTripper
	clock *serverClock
}

func (c ctxTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.base.RoundTrip(req.WithContext(c.ctx))
	if err == nil && c.clock != nil {
		c.clock.note(resp)
	}
	return resp, err
}

func (a *sdkAPI) client(ctx context.Context, creds *basic.Credentials) *vpc.VpcClient {
	return vpc.NewVpcClient(a.httpClient(ctx, creds, a.endpoint))
}

func (a *sdkAPI) ecsClient(ctx context.Context, creds *basic.Credentials) *ecs.EcsClient {
	return ecs.NewEcsClient(a.httpClient(ctx, creds, a.ecsEndpoint))
}

func (a *sdkAPI) httpClient(ctx context.Context, creds *basic.Credentials, endpoint string) *hccore.HcHttpClient {
	hc := config.DefaultHttpConfig().
		WithHttpRoundTripper(ctxTransport{ctx: ctx, base: a.transport, clock: &a.clock}).
		WithUserAgent("vpcroute")
	// The attempt's context bounds the request; the SDK's own retries stay off
	// (Retries 0, a single endpoint) so that backoff and deadlines are ours.
	hc.Timeout = 0
	hc.Retries = 0
	return hccore.NewHcHttpClient(impl.NewDefaultHttpClient(hc)).
		WithEndpoints([]string{endpoint}).
		WithCredential(creds)
}

// call runs one SDK operation with retries: throttling, 5xx, connection errors
// and timeouts are tried again with exponential backoff and full jitter until
// the operation's context ends. Other errors return at once.
func call[T any](ctx context.Context, a *sdkAPI, op, object string, fn func(*vpc.VpcClient) (T, error)) (T, error) {
	return callRetrying(ctx, a, op, object, (*APIError).retryable, fn)
}

// callRetrying is call with retry saying which failures are tried again.
func callRetrying[T any](ctx context.Context, a *sdkAPI, op, object string, retry func(*APIError) bool, fn func(*vpc.VpcClient) (T, error)) (T, error) {
	return callOn(ctx, a, op, object, retry, a.client, fn)
}

// callOn is callRetrying on the client mk builds (the VPC's or the ECS's).
func callOn[C, T any](ctx context.Context, a *sdkAPI, op, object string, retry func(*APIError) bool,
	mk func(context.Context, *basic.Credentials) C, fn func(C) (T, error)) (T, error) {
	var zero T
	authRetried := false
	for attempt := 1; ; attempt++ {
		creds, err := a.creds.credentials(ctx)
		if err != nil {
			return zero, err
		}
		actx, cancel := context.WithTimeout(ctx, a.t.attemptTimeout)
		res, err := fn(mk(actx, creds))
		cancel()
		if err == nil {
			return res, nil
		}
		ae := toAPIError(op, object, err, creds)
		ae.Attempts = attempt
		if ae.Status == http.StatusUnauthorized && !authRetried {
			// Temporary credentials may have been revoked or rotated early:
			// fetch new ones once before calling them bad.
			authRetried = true
			a.creds.invalidate()
			if _, isStatic := a.creds.(*staticCredentials); !isStatic {
				continue
			}
		}
		if ctx.Err() != nil || !retry(ae) {
			addHint(ae, a.creds)
			return zero, ae
		}
		delay := backoff(a.t, attempt)
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < delay+10*time.Millisecond {
			addHint(ae, a.creds)
			return zero, ae
		}
		a.log.Debug("VPC API call failed; retrying", "op", op, "object", object, "attempt", attempt,
			"status", ae.Status, "code", ae.Code, "delay", delay)
		if sleep(ctx, delay) != nil {
			addHint(ae, a.creds)
			return zero, ae
		}
	}
}

// backoff is the delay before retry number attempt (1-based): full jitter over
// an exponentially growing, capped window.
func backoff(t timing, attempt int) time.Duration {
	window := t.backoffBase << min(attempt-1, 16)
	if window > t.backoffMax || window <= 0 {
		window = t.backoffMax
	}
	return window/4 + rand.N(window*3/4+1)
}

// toAPIError turns whatever the SDK returned into an APIError, with every
// credential string removed from server messages.
func toAPIError(op, object string, err error, creds *basic.Credentials) *APIError {
	ae := &APIError{Op: op, Object: object}
	var sre *sdkerr.ServiceResponseError
	var sre2 sdkerr.ServiceResponseError
	switch {
	case errors.As(err, &sre):
		ae.Status, ae.Code, ae.Message, ae.RequestID = sre.StatusCode, sre.ErrorCode, sre.ErrorMessage, sre.RequestId
	case errors.As(err, &sre2):
		ae.Status, ae.Code, ae.Message, ae.RequestID = sre2.StatusCode, sre2.ErrorCode, sre2.ErrorMessage, sre2.RequestId
	default:
		ae.Err = err
	}
	if ae.Status != 0 && ae.Status < 400 {
		// A response arrived but its body could not be read or parsed:
		// treat it like a broken connection.
		ae.Err = errors.New(ae.Message)
		ae.Status, ae.Message = 0, ""
	}
	ae.Message = redact(shorten(ae.Message, 300), creds)
	if ae.Err != nil {
		ae.Err = redactedError{ae.Err, creds}
	}
	return ae
}

// redactedError keeps errors.Is/As working while its text has no secrets.
type redactedError struct {
	err   error
	creds *basic.Credentials
}

func (r redactedError) Error() string { return redact(r.err.Error(), r.creds) }
func (r redactedError) Unwrap() error { return r.err }

func redact(s string, c *basic.Credentials) string {
	if c == nil {
		return s
	}
	for _, secret := range []string{c.SK, c.SecurityToken, c.AK} {
		if len(secret) >= 4 {
			s = strings.ReplaceAll(s, secret, "***")
		}
	}
	return s
}

func convertRoutes(rs []model.RouteTableRoute) []route {
	out := make([]route, 0, len(rs))
	for _, r := range rs {
		d := ""
		if r.Description != nil {
			d = *r.Description
		}
		out = append(out, route{Type: r.Type, Destination: r.Destination, NextHop: r.Nexthop, Description: d})
	}
	return out
}

func (a *sdkAPI) listRouteTables(ctx context.Context, vpcID, subnetID string) ([]routeTable, error) {
	const pageSize = 100
	var out []routeTable
	var marker *string
	object := "route tables of VPC " + vpcID
	if subnetID != "" {
		object = "route table of subnet " + subnetID
	}
	for {
		req := &model.ListRouteTablesRequest{VpcId: &vpcID, Limit: ptr(int32(pageSize)), Marker: marker}
		if subnetID != "" {
			req.SubnetId = &subnetID
		}
		resp, err := call(ctx, a, "ListRouteTables", object, func(c *vpc.VpcClient) (*model.ListRouteTablesResponse, error) {
			return c.ListRouteTables(req)
		})
		if err != nil {
			return nil, err
		}
		var page []model.RouteTableListResp
		if resp.Routetables != nil {
			page = *resp.Routetables
		}
		for _, t := range page {
			out = append(out, routeTable{ID: t.Id, Default: t.Default})
		}
		if len(page) < pageSize {
			return out, nil
		}
		marker = &page[len(page)-1].Id
	}
}

func (a *sdkAPI) showRouteTable(ctx context.Context, id string) (routeTable, error) {
	resp, err := call(ctx, a, "ShowRouteTable", "route table "+id, func(c *vpc.VpcClient) (*model.ShowRouteTableResponse, error) {
		return c.ShowRouteTable(&model.ShowRouteTableRequest{RoutetableId: id})
	})
	if err != nil {
		return routeTable{}, err
	}
	if resp.Routetable == nil {
		return routeTable{}, &APIError{Op: "ShowRouteTable", Object: "route table " + id, Err: errors.New("response has no routetable")}
	}
	t := resp.Routetable
	return routeTable{ID: t.Id, Default: t.Default, Routes: convertRoutes(t.Routes)}, nil
}

func (a *sdkAPI) updateRouteTable(ctx context.Context, id string, add, del []route) (routeTable, error) {
	action := &model.RouteTableRouteAction{}
	if len(add) > 0 {
		adds := make([]model.AddRouteTableRoute, 0, len(add))
		for _, r := range add {
			adds = append(adds, model.AddRouteTableRoute{Type: r.Type, Destination: r.Destination, Nexthop: r.NextHop, Description: ptr(r.Description)})
		}
		action.Add = &adds
	}
	if len(del) > 0 {
		dels := make([]model.DelRouteTableRoute, 0, len(del))
		for _, r := range del {
			dels = append(dels, model.DelRouteTableRoute{Type: ptr(r.Type), Destination: r.Destination, Nexthop: ptr(r.NextHop)})
		}
		action.Del = &dels
	}
	body := &model.UpdateRoutetableReqBody{Routetable: &model.UpdateRouteTableReq{Routes: action}}
	// Only a refusal (throttled) is sent again here: a write that got no answer or a
	// 5xx may have been applied, and its caller reads the table before writing again.
	resp, err := callRetrying(ctx, a, "UpdateRouteTable", "route table "+id, writeRetryable, func(c *vpc.VpcClient) (*model.UpdateRouteTableResponse, error) {
		return c.UpdateRouteTable(&model.UpdateRouteTableRequest{RoutetableId: id, Body: body})
	})
	if err != nil {
		return routeTable{}, err
	}
	if resp.Routetable == nil {
		// Applied, but the answer does not show the table: callers read it.
		return routeTable{ID: id}, nil
	}
	t := resp.Routetable
	return routeTable{ID: t.Id, Default: t.Default, Routes: convertRoutes(t.Routes), Shown: true}, nil
}

// routeQuota returns how many routes one route table may hold; 0 if unknown.
func (a *sdkAPI) routeQuota(ctx context.Context) (int, error) {
	typ := model.GetShowQuotaRequestTypeEnum().ROUTETABLE_CONTAIN_ROUTES
	resp, err := call(ctx, a, "ShowQuota", "quota routetableContainRoutes", func(c *vpc.VpcClient) (*model.ShowQuotaResponse, error) {
		return c.ShowQuota(&model.ShowQuotaRequest{Type: &typ})
	})
	if err != nil {
		return 0, err
	}
	if resp.Quotas == nil {
		return 0, nil
	}
	for _, r := range resp.Quotas.Resources {
		if r.Type.Value() == typ.Value() && r.Quota > 0 {
			return int(r.Quota), nil
		}
	}
	return 0, nil
}

func convertPort(p *model.Port) port {
	return port{ID: p.Id, NetworkID: p.NetworkId, Pairs: p.AllowedAddressPairs, SecurityGroups: p.SecurityGroups}
}

// listPortsOf lists the ports of an instance: none when it no longer exists.
func (a *sdkAPI) listPortsOf(ctx context.Context, instanceID string) ([]port, error) {
	resp, err := call(ctx, a, "ListPorts", "ports of instance "+instanceID, func(c *vpc.VpcClient) (*model.ListPortsResponse, error) {
		return c.ListPorts(&model.ListPortsRequest{DeviceId: &instanceID})
	})
	if err != nil {
		return nil, err
	}
	var out []port
	if resp.Ports != nil {
		for i := range *resp.Ports {
			out = append(out, convertPort(&(*resp.Ports)[i]))
		}
	}
	return out, nil
}

// listSecurityGroupRules lists a security group's rules.
func (a *sdkAPI) listSecurityGroupRules(ctx context.Context, groupID string) ([]sgRule, error) {
	resp, err := call(ctx, a, "ListSecurityGroupRules", "rules of security group "+groupID, func(c *vpc.VpcClient) (*model.ListSecurityGroupRulesResponse, error) {
		return c.ListSecurityGroupRules(&model.ListSecurityGroupRulesRequest{SecurityGroupId: &groupID})
	})
	if err != nil {
		return nil, err
	}
	var out []sgRule
	if resp.SecurityGroupRules != nil {
		for _, r := range *resp.SecurityGroupRules {
			out = append(out, sgRule{Direction: r.Direction, Ethertype: r.Ethertype, Protocol: r.Protocol,
				PortMin: r.PortRangeMin, PortMax: r.PortRangeMax, RemoteIPPrefix: r.RemoteIpPrefix, RemoteGroupID: r.RemoteGroupId})
		}
	}
	return out, nil
}

func (a *sdkAPI) showPort(ctx context.Context, id string) (port, error) {
	resp, err := call(ctx, a, "ShowPort", "port "+id, func(c *vpc.VpcClient) (*model.ShowPortResponse, error) {
		return c.ShowPort(&model.ShowPortRequest{PortId: id})
	})
	if err != nil {
		return port{}, err
	}
	if resp.Port == nil {
		return port{}, &APIError{Op: "ShowPort", Object: "port " + id, Err: errors.New("response has no port")}
	}
	return convertPort(resp.Port), nil
}

func (a *sdkAPI) updatePortPairs(ctx context.Context, id string, pairs []model.AllowedAddressPair) (port, error) {
	body := &model.UpdatePortRequestBody{Port: &model.UpdatePortOption{AllowedAddressPairs: &pairs}}
	resp, err := call(ctx, a, "UpdatePort", "port "+id, func(c *vpc.VpcClient) (*model.UpdatePortResponse, error) {
		return c.UpdatePort(&model.UpdatePortRequest{PortId: id, Body: body})
	})
	if err != nil {
		return port{}, err
	}
	if resp.Port == nil {
		return port{ID: id, Pairs: pairs}, nil
	}
	return convertPort(resp.Port), nil
}

func (a *sdkAPI) listSubnetCIDRs(ctx context.Context, vpcID string) ([]netip.Prefix, error) {
	resp, err := call(ctx, a, "ListSubnets", "subnets of VPC "+vpcID, func(c *vpc.VpcClient) (*model.ListSubnetsResponse, error) {
		return c.ListSubnets(&model.ListSubnetsRequest{VpcId: &vpcID})
	})
	if err != nil {
		return nil, err
	}
	var out []netip.Prefix
	if resp.Subnets != nil {
		for _, s := range *resp.Subnets {
			if p, err := netip.ParsePrefix(s.Cidr); err == nil {
				out = append(out, p.Masked())
			}
		}
	}
	return out, nil
}

// serverDeleted is serverStatus's answer for an instance that does not exist.
const serverDeleted = "DELETED"

func (a *sdkAPI) serverStatus(ctx context.Context, id string) (string, error) {
	resp, err := callOn(ctx, a, "ShowServer", "ECS "+id, (*APIError).retryable, a.ecsClient, func(c *ecs.EcsClient) (*ecsmodel.ShowServerResponse, error) {
		return c.ShowServer(&ecsmodel.ShowServerRequest{ServerId: id})
	})
	if hasStatus(err, http.StatusNotFound) {
		return serverDeleted, nil
	}
	if err != nil {
		return "", err
	}
	if resp.Server == nil || resp.Server.Status == "" {
		return "", &APIError{Op: "ShowServer", Object: "ECS " + id, Err: errors.New("response has no server status")}
	}
	return resp.Server.Status, nil
}

func ptr[T any](v T) *T { return &v }

// regionEndpoint is the SDK's VPC endpoint for a region, or Huawei's naming
// scheme for regions newer than this SDK.
func regionEndpoint(regionID string) string {
	if r, err := vpcregion.SafeValueOf(regionID); err == nil && r != nil && len(r.Endpoints) > 0 {
		return r.Endpoints[0]
	}
	return fmt.Sprintf("https://vpc.%s.myhuaweicloud.com", regionID)
}

// ecsRegionEndpoint is the SDK's ECS endpoint for a region, or Huawei's naming
// scheme for regions newer than this SDK.
func ecsRegionEndpoint(regionID string) string {
	if r, err := ecsregion.SafeValueOf(regionID); err == nil && r != nil && len(r.Endpoints) > 0 {
		return r.Endpoints[0]
	}
	return fmt.Sprintf("https://ecs.%s.myhuaweicloud.com", regionID)
}

// portPair is an allowed address pair of a port.
type portPair = model.AllowedAddressPair
