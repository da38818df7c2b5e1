//go:build linux

package link

import (
	"testing"

	"github.com/vpcroute/vpcroute/internal/netnstest"
)

func TestMain(m *testing.M) { netnstest.Main(m) }

// host is the link layer the tests drive.
var host Host

func mustDo(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
