package huawei

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/vpcroute/vpcroute/cloud"
)

// Error codes of the VPC API that vpcroute acts on.
const (
	// codeDuplicateDestination: the table already has a route to this
	// destination; usually another host won a race for the same subnet.
	codeDuplicateDestination = "VPC.2812"
	// codeOverlapsSubnet: the destination overlaps a subnet of the VPC.
	codeOverlapsSubnet = "VPC.2809"
	// codeRouteNotFound: a del or mod of a destination the table lacks.
	codeRouteNotFound = "VPC.2810"
	// codeThrottled: API Gateway's rate limit.
	codeThrottled = "APIGW.0308"
)

// ErrQuotaFull means the route table holds as many routes as its quota allows.
var ErrQuotaFull = cloud.ErrQuotaFull

// APIError is a VPC API call that failed. Its message says what to do; the
// fields let callers branch on the status or Huawei's error code.
type APIError struct {
	Op        string // SDK operation, e.g. "UpdateRouteTable"
	Object    string // what it was about, e.g. "route table 5c2c...", for messages
	Status    int    // HTTP status, 0 when no response arrived
	Code      string // Huawei error code, e.g. "VPC.2812"
	Message   string // Huawei's error message
	RequestID string // X-Request-Id, for Huawei support
	Hint      string // what the user should do
	Attempts  int    // how many times it was tried
	Err       error  // transport error when Status is 0
}

// ecsOps are the operations of the ECS API; every other one is the VPC API's.
var ecsOps = map[string]bool{"ShowServer": true}

// service names the API of e's operation, the setting of its endpoint, and a system
// policy that grants what vpcroute needs of it.
func (e *APIError) service() (name, endpoint, policy string) {
	if ecsOps[e.Op] {
		return "ECS API", "VPCROUTE_ECS_ENDPOINT", "ECS ReadOnlyAccess"
	}
	return "VPC API", "VPCROUTE_VPC_ENDPOINT", "VPC FullAccess"
}

func (e *APIError) Error() string {
	var s string
	name, _, _ := e.service()
	if e.Status == 0 {
		s = fmt.Sprintf("%s %s (%s): %v", name, e.Op, e.Object, e.Err)
	} else {
		s = fmt.Sprintf("%s %s (%s): HTTP %d", name, e.Op, e.Object, e.Status)
		if e.Code != "" {
			s += " " + e.Code
		}
		if e.Message != "" {
			s += ": " + e.Message
		}
		if e.RequestID != "" {
			s += " (request ID " + e.RequestID + ")"
		}
	}
	if e.Attempts > 1 {
		s += fmt.Sprintf(", after %d attempts", e.Attempts)
	}
	if e.Hint != "" {
		s += "; " + e.Hint
	}
	return s
}

func (e *APIError) Unwrap() error { return e.Err }

// iamActions names the IAM permission each operation needs, for 403 messages.
var iamActions = map[string]string{
	"ListRouteTables":        "vpc:routeTables:list",
	"ShowRouteTable":         "vpc:routeTables:get",
	"UpdateRouteTable":       "vpc:routeTables:update",
	"ShowQuota":              "vpc:quotas:list",
	"ShowPort":               "vpc:ports:get",
	"UpdatePort":             "vpc:ports:update",
	"ListSubnets":            "vpc:subnets:get",
	"ListPorts":              "vpc:ports:get",
	"ListSecurityGroupRules": "vpc:securityGroupRules:get",
	"ShowServer":             "ecs:cloudServers:get",
}

// addHint fills in what the user should do about a failed call.
func addHint(e *APIError, creds credentialSource) {
	name, endpoint, policy := e.service()
	switch {
	case e.Status == 0 && errors.Is(e.Err, context.DeadlineExceeded):
		e.Hint = fmt.Sprintf("no answer in time: the %s is slow, or this host cannot reach it (check %s, or the region's default from VPCROUTE_REGION)", name, endpoint)
	case e.Status == 0:
		e.Hint = fmt.Sprintf("check that this host can reach the %s (%s, or the region's default from VPCROUTE_REGION)", name, endpoint)
	case e.Status == http.StatusUnauthorized:
		e.Hint = "the credentials were rejected: check " + creds.describe() + ", and that the host clock is right"
	case e.Status == http.StatusForbidden:
		action := iamActions[e.Op]
		e.Hint = fmt.Sprintf("the credentials lack permission %s: grant it (e.g. the %s policy) to the IAM user or ECS agency in use", action, policy)
	case e.Status == http.StatusNotFound:
		e.Hint = fmt.Sprintf("%s does not exist (check VPCROUTE_ROUTE_TABLE_ID, VPCROUTE_VPC_ID, VPCROUTE_PORT_ID and VPCROUTE_PROJECT_ID)", e.Object)
	case e.Status == http.StatusTooManyRequests || e.Code == codeThrottled:
		e.Hint = "the " + name + " kept throttling requests; try again later"
	case e.Status >= 500:
		e.Hint = "the " + name + " kept failing; try again later"
	}
}

// retryable says whether a failed attempt may succeed when tried again.
func (e *APIError) retryable() bool {
	if e.Status == 0 {
		return true // connection refused/reset, timeout, truncated response
	}
	return e.Status == http.StatusTooManyRequests || e.Code == codeThrottled || e.Status >= 500
}

// hasCode reports whether err is an APIError with Huawei error code code.
func hasCode(err error, code string) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Code == code
}

// hasStatus reports whether err is an APIError with HTTP status status.
func hasStatus(err error, status int) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Status == status
}
