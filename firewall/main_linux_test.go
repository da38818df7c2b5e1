//go:build linux

package firewall

import (
	"flag"
	"testing"

	"github.com/vpcroute/vpcroute/internal/netnstest"
	"github.com/vpcroute/vpcroute/link"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the rules the code makes")

func TestMain(m *testing.M) { netnstest.Main(m) }

// host is the link layer the tests drive.
var host link.Host
