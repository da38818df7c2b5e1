//go:build linux

package testbed_test

import (
	"context"
	"fmt"
	"log"

	"github.com/vpcroute/vpcroute/internal/testbed"
)

// A test builds a bed under its own prefix, starts a plugin on each ECS, plays the VPC route
// table in the router namespace and checks connectivity from a container. (Not run by
// `go test`: it needs root and a plugin binary.)
func ExampleUp() {
	ctx := context.Background()
	bed, err := testbed.Up(ctx, testbed.Config{Prefix: "vrdoc", ECSCount: 2})
	if err != nil {
		log.Fatal(err)
	}
	defer bed.Down(ctx)

	for _, ecs := range bed.ECSs {
		p, err := ecs.StartPlugin("bin/vpcroute", []string{"VPCROUTE_STATE_DIR=" + ecs.Dir + "/vpcroute"})
		if err != nil {
			log.Fatal(err)
		}
		defer p.Stop()
		if err := ecs.WaitPlugin(ctx, "vpcroute"); err != nil {
			log.Fatalf("%v\n%s", err, p.Logs())
		}
	}
	ecs1, ecs2 := bed.ECSs[0], bed.ECSs[1]
	if _, err := bed.RouterExec(ctx, "ip", "route", "replace", "10.0.3.0/24", "via", ecs2.IP.String()); err != nil {
		log.Fatal(err)
	}
	if _, err := ecs2.Docker(ctx, "network", "create", "-d", "vpcroute", "--subnet", "10.0.3.0/24", "n"); err != nil {
		log.Fatal(err)
	}
	if _, err := ecs2.Docker(ctx, "run", "-d", "--name", "web", "--net", "n", testbed.ImageName); err != nil {
		log.Fatal(err)
	}
	out, err := ecs1.Docker(ctx, append([]string{"run", "--rm", testbed.ImageName}, testbed.HTTPGetCmd("10.0.3.2", 80)...)...)
	fmt.Println(out, err)
}
