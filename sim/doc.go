// Package sim emulates the parts of Huawei Cloud that vpcroute talks to: the VPC
// route table API, the port API (source/destination check), the route quota, the
// API gateway's SDK-HMAC-SHA256 signature check, and the ECS metadata service
// (identity, network data and agency temporary credentials).
//
// Note for the cloud/huawei client helper: the real SDK
// (github.com/huaweicloud/huaweicloud-sdk-go-v3) accepts plain http endpoints:
// HcHttpClientBuilder only prefixes "https://" to an endpoint that does not
// already start with "http". So
//
//	vpc.NewVpcClient(vpc.VpcClientBuilder().
//		WithEndpoints([]string{"http://127.0.0.1:PORT"}).
//		WithCredential(basic.NewCredentialsBuilder().WithAk(ak).WithSk(sk).WithProjectId(pid).Build()).
//		Build())
//
// talks to an httptest.Server running Handler() with no TLS and no
// IgnoreSSLVerification. Temporary credentials add WithSecurityToken(token).
// The SDK does not retry a 429 or 5xx answer by default; the client must.
//
// It is an emulator, not a mock: it keeps state and rejects what the real service
// rejects, with the real service's status codes and error bodies, so the client
// is tested against the same failures it meets in production:
//
//   - Every route table shows, besides its custom routes, one route of type
//     "local" with next hop "-" per subnet of the VPC, and the system routes
//     Huawei's VPC guide lists for every table (100.64.0.0/10 and
//     198.19.128.0/20). Clients deriving the VPC's ranges from local routes must
//     skip the system ones (see SystemRanges).
//   - PUT /v1/{project_id}/routetables/{id} applies routes.add, routes.mod and
//     routes.del as one atomic delta; any error leaves the table unchanged.
//     A duplicate destination (among custom routes, or twice in one request) is
//     400 VPC.2812; a destination equal to or inside a local route is 400
//     VPC.2809 (a wider one such as 0.0.0.0/0 is allowed, as for a NAT default
//     route: longest prefix match keeps the local route first); an
//     unknown table is 404 VPC.2808; an ecs next hop that is not an instance of
//     the VPC is 400 VPC.2804; a bad CIDR or description is 400 VPC.2801;
//     exceeding the quota is 409 VPC.2813.
//   - The route quota (routetableContainRoutes, default 200) counts custom
//     routes only: local routes are the system's and Huawei's console counts
//     "custom routes" against the 200 limit. GET /v1/{project_id}/quotas reports
//     used = custom routes of the fullest table of the VPC, since that is the
//     table that hits the limit first.
//   - Errors of the VPC service have the body {"code","message"}; errors of the
//     API gateway (signature: 401 APIGW.0301, throttling: 429 APIGW.0308) have
//     {"error_code","error_msg","request_id"}. Every response carries
//     X-Request-Id.
//
// The error codes VPC.2812 and VPC.2808/2809 come from Huawei's documentation and
// from users' reports; VPC.2801, VPC.2804 and VPC.2813 are this emulator's choice
// where the public documentation gives no code, and clients must not depend on
// them: they should branch on the HTTP status and on 2808/2809/2812 only.
package sim
