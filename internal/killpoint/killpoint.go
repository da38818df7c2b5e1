// Package killpoint marks the steps of a network's creation and removal where a
// crash must leave nothing that the next start cannot finish. In a normal build Here
// does nothing and costs nothing. A build with the "chaos" tag (internal/e2e's
// TestKillAtEveryStep) stops at the step named in the file VPCROUTE_KILLPOINT_FILE,
// says so on standard error, and waits there for kill -9.
package killpoint

// The steps, in the order a network lives through them.
const (
	PoolRecorded     = "pool-recorded"     // RequestPool: pool saved as Claiming, no route yet
	PoolClaimed      = "pool-claimed"      // RequestPool: route in the VPC, pool still Claiming
	NetworkRecorded  = "network-recorded"  // CreateNetwork: network saved as Creating
	NetworkClaimed   = "network-claimed"   // CreateNetwork (Docker's IPAM): route in the VPC
	NetworkBuilt     = "network-built"     // CreateNetwork: bridge and rules made, still Creating
	NetworkDeleting  = "network-deleting"  // DeleteNetwork: network saved as Deleting
	NetworkTornDown  = "network-torn-down" // DeleteNetwork: bridge and rules gone
	NetworkReleased  = "network-released"  // DeleteNetwork (Docker's IPAM): route gone, record kept
	PoolReleasing    = "pool-releasing"    // ReleasePool: pool saved as Releasing
	PoolReleased     = "pool-released"     // ReleasePool: route gone, record kept
	reachedMsgPrefix = "killpoint reached: "
)

// Create and Delete list the steps of each, for the tests that kill at every one.
var (
	Create = []string{PoolRecorded, PoolClaimed, NetworkRecorded, NetworkClaimed, NetworkBuilt}
	Delete = []string{NetworkDeleting, NetworkTornDown, NetworkReleased, PoolReleasing, PoolReleased}
)

// Reached is the line a chaos build prints when it stops at step.
func Reached(step string) string { return reachedMsgPrefix + step }
