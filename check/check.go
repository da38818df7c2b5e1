// Package check is the shape of `vpcroute doctor`'s findings: each says what was
// checked, how it stands, what was seen and what to do. Each part of vpcroute checks
// what it owns (cloud/huawei the cloud, controller the host and the records).
package check

// Status of a check.
const (
	Pass = "PASS"
	Warn = "WARN"
	Fail = "FAIL"
	// Skip: the check could not be made (say why in Detail).
	Skip = "SKIP"
)

// Result is one check.
type Result struct {
	Name   string `json:"name"`
	Status string `json:"status"`
	// Detail is what was seen; Fix what to do when the status is not Pass.
	Detail string `json:"detail,omitempty"`
	Fix    string `json:"fix,omitempty"`
}

// Worst returns the worst status among results: Fail, then Warn, then Pass.
func Worst(results []Result) string {
	worst := Pass
	for _, r := range results {
		switch {
		case r.Status == Fail:
			return Fail
		case r.Status == Warn:
			worst = Warn
		}
	}
	return worst
}
