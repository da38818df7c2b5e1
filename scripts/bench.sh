#!/bin/sh
# Measures vpcroute against its budgets and rewrites docs/benchmarks.md (see that file
# for the budgets and figures). Needs root: the Go benchmarks make throwaway network
# namespaces, and the rest runs on the two-ECS test bed (prefix "vrb") with the emulated
# Huawei Cloud. Takes about 30 minutes on 2 cores: the data path (eight paths in ten
# rounds of 4 s iperf3 per path in 1 s turns, then a perf profile when perf is
# installed) about 9, the scale part (1, 100, 200 networks) about 15, of which 10 time Docker's calls during
# background passes at 200 networks (VRBENCH_ARGS="-probe-window 30s" for a short run).
#
#   sudo ./scripts/bench.sh                 # everything
#   VRBENCH_ARGS="-iperf-runs 2" sudo -E ./scripts/bench.sh   # pass knobs to cmd/vpcroute-bench
#   VRBENCH_ARGS="-paths container,host,hand,guide" sudo -E ./scripts/bench.sh  # other data paths
#   GOBENCH_COUNT=1 sudo -E ./scripts/bench.sh                  # fewer Go benchmark runs
set -eu

cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
	echo "bench.sh: needs root (network namespaces, dockerd, iptables); run: sudo $0" >&2
	exit 1
fi
for tool in iperf3 nsenter ip iptables /usr/sbin/dockerd /usr/bin/docker /bin/busybox; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "bench.sh: $tool is missing; install docker.io, iptables, iproute2, util-linux, busybox-static and iperf3" >&2
		exit 1
	fi
done
if ! command -v perf >/dev/null 2>&1; then
	echo "bench.sh: perf is missing (Debian: linux-perf); the data path's CPU profile is left out" >&2
fi

GO=${GO:-go}
out=$(mktemp -d /tmp/vpcroute-bench.XXXXXX)
trap 'rm -rf "$out"' EXIT

echo "bench.sh: Go benchmarks of the driver (kernel in throwaway namespaces)" >&2
$GO test -run '^$' -bench 'BenchmarkContainerPath|BenchmarkNetworkCreate' -benchmem \
	-benchtime "${GOBENCH_TIME:-30x}" -count "${GOBENCH_COUNT:-3}" ./driver | tee "$out/gobench.txt"
echo "bench.sh: Go benchmarks of host blocks (emulated VPC, in process)" >&2
$GO test -run '^$' -bench 'BenchmarkCreateModes' -benchtime "${GOBENCH_TIME:-30x}" -count "${GOBENCH_COUNT:-3}" \
	./internal/chaos | tee -a "$out/gobench.txt"
$GO test -run '^$' -bench 'BenchmarkRouteTableUse' -benchtime 1x -count 1 -timeout 20m \
	./internal/chaos | tee -a "$out/gobench.txt"
status=0
if [ "$(grep -c '^ok' "$out/gobench.txt")" -lt 3 ]; then
	echo "bench.sh: the driver benchmarks failed (see above); the report is written anyway" >&2
	status=1
fi

echo "bench.sh: budgets on the test bed" >&2
# The data path also runs the release before the security model (issue 9) on a bed of
# its own, so that a network without a policy is compared with what it was; set
# VRBENCH_BASELINE= (empty) to leave it out, or another revision.
baseline=${VRBENCH_BASELINE-ec4d0be}
[ -z "$baseline" ] || baseline="-baseline $baseline"
# shellcheck disable=SC2086 # VRBENCH_ARGS and baseline are lists of flags
$GO run ./cmd/vpcroute-bench -gobench "$out/gobench.txt" -out docs/benchmarks.md $baseline ${VRBENCH_ARGS:-}
exit $status
