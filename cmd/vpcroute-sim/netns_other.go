//go:build !linux

package main

import (
	"errors"
	"net"

	"github.com/vpcroute/vpcroute/internal/sim"
)

var errLinuxOnly = errors.New("network namespaces need Linux")

func listenInNetns(string, string) (net.Listener, error) { return nil, errLinuxOnly }

func syncRouter(*sim.Sim, string, func(error)) (func(), error) { return nil, errLinuxOnly }
