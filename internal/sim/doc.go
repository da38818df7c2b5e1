// Package sim emulates the parts of Huawei Cloud that vpcroute talks to: the VPC
// route table API, the port API (source/destination check), the route quota, the
// API gateway's SDK-HMAC-SHA256 signature check, the ECS API's ShowServer (an
// instance's state: ACTIVE, SHUTOFF, ERROR; 404 Ecs.0114 once deleted; the same
// server answers it, so a client points its ECS endpoint there too), and the ECS
// metadata service (identity, network data and agency temporary credentials).
//
// # Note for the cloud/huawei client
//
// The real SDK (github.com/huaweicloud/huaweicloud-sdk-go-v3 v0.1.207) accepts
// plain http endpoints: HcHttpClientBuilder prefixes "https://" only to an
// endpoint that does not already start with "http". So
//
//	vpc.NewVpcClient(vpc.VpcClientBuilder().
//		WithEndpoints([]string{"http://127.0.0.1:PORT"}).
//		WithCredential(basic.NewCredentialsBuilder().WithAk(ak).WithSk(sk).WithProjectId(pid).Build()).
//		Build())
//
// talks to an httptest.Server running Handler() with no TLS and no
// IgnoreSSLVerification. Agency credentials add WithSecurityToken(token); they
// expire (expires_at of the securitykey answer), after which the API answers
// 401 APIGW.0301 and the client must fetch the securitykey again. The SDK does
// not retry a 429 or 5xx answer by default; the client must. Go's transport
// retries an idempotent request once when a reused connection closes without an
// answer, so a dropped GET is seen only when two drops are injected.
//
// Route tables list without their routes (as the real API: RouteTableListResp
// has none); read each with GET .../routetables/{id}.
//
// # Faithfulness
//
// It is an emulator, not a mock: it keeps state and rejects what the real service
// rejects, with the real service's status codes and error bodies, so the client
// is tested against the failures it meets in production:
//
//   - Every route table shows, before its custom routes, one route of type
//     "local" with next hop "-" per subnet of the VPC (in every table, as the
//     VPC's subnets reach each other whatever table they use), then the system
//     routes Huawei's VPC guide lists for every table: 100.64.0.0/10 and
//     198.19.128.0/20. Clients deriving the VPC's ranges from local routes must
//     skip those two (SystemRanges).
//   - PUT /v1/{project_id}/routetables/{id} applies routes.del, routes.mod and
//     routes.add, in that order, as one atomic delta: any error leaves the table
//     unchanged. del matches by destination alone. A del and an add of one
//     destination in one request replace the route.
//   - The route quota (routetableContainRoutes, Config.RouteQuota, default 200)
//     counts custom routes only: local routes are the system's, and Huawei's
//     guide states the limit for the routes one adds. GET
//     /v1/{project_id}/quotas reports used = the custom routes of the fullest
//     table, the one that reaches the limit first.
//   - Every response carries X-Request-Id. Errors of the VPC service have the
//     body {"code","message"}; errors of the API gateway have
//     {"error_code","error_msg","request_id"}.
//
// Errors (status, code, when):
//
//	401 APIGW.0301  missing or wrong signature, unknown AK, X-Sdk-Date more than 15 min
//	                from the server's clock, temporary AK expired or without/with a wrong
//	                X-Security-Token
//	429 APIGW.0308  throttled (injected with Fault)
//	404 APIGW.0101  no such API
//	400 VPC.0007    project ID of the path is not the credential's project
//	404 VPC.0003    unknown VPC
//	404 VPC.2808    unknown route table
//	400 VPC.2812    destination already in the table, or twice in one request
//	400 VPC.2809    destination equal to or inside a local route, or mod/del of a local
//	                route (a wider destination such as 0.0.0.0/0 is allowed, as for a NAT
//	                default route: longest prefix match keeps local routes first)
//	400 VPC.2804    ecs next hop that is not an instance of the VPC
//	400 VPC.2810    mod or del of a destination the table lacks
//	400 VPC.2801    malformed field: CIDR not IPv4 or not a network address, type missing,
//	                unknown or "local", nexthop missing, description over 255 characters
//	                or with '<' or '>', bad table name
//	409 VPC.2813    the update would exceed routetableContainRoutes
//	404 VPC.0601    unknown port; 400 VPC.2500 malformed port update
//
// 2808, 2809 and 2812 are Huawei's codes, and APIGW.0301/0308/0101, VPC.0003 and
// VPC.0007 are from its API reference; 2801, 2804, 2810, 2813, 0601 and 2500 are
// this emulator's choice where the public reference gives no code. Clients should
// branch on the HTTP status and on 2808, 2809 and 2812 only.
//
// # Metadata and ports
//
// The metadata service answers /openstack/latest/meta_data.json (uuid,
// project_id, region_id, availability_zone, name, meta.vpc_id),
// network_data.json (links[].vif_id = the primary port, networks[].network_id =
// the subnet) and securitykey ({"credential":{"access","secret",
// "securitytoken","expires_at"}}, 404 for an ECS without agency). The ECS is
// the one whose IP is the request's source, or the one named by a
// /ecs/{name}/openstack/... path prefix. A port's source/destination check is
// off exactly when its allowed_address_pairs hold {"ip_address":"1.1.1.1/0"}.
//
// # Test hooks
//
// Requests logs every request except the admin API's (/_sim/...). InjectFault
// and POST /_sim/faults queue latency, error answers or dropped connections, at a
// rate for a storm of them, and the two ways a write fails and still happens: one
// that gets no answer and lands later (Late), one applied then answered 5xx
// (Apply); WaitLate waits for the late ones.
// Config.Now moves the emulator's clock for skew and expiry. SyncRouter keeps a
// network namespace's routes in step with the route tables for an end-to-end
// test bed; cmd/vpcroute-sim serves all of it from a JSON config.
package sim
