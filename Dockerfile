# The published managed plugin's rootfs (`make push` exports a container of this image
# next to plugin/config.json). `make plugin` builds the same layout offline from the
# build machine's files instead (scripts/plugin-rootfs.sh).
#
# Bases are pinned to exact tags so that a rebuild gives the same iptables and Go;
# bump them deliberately.

FROM golang:1.24.7-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
# Static: the runtime image has no Go and the plugin must not depend on its libc.
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/vpcroute . \
    && /out/vpcroute version

FROM debian:bookworm-20250929-slim
# iptables brings both backends (xtables-nft-multi, xtables-legacy-multi) with their
# extension modules; vpcroute uses whichever the host's rules are in.
RUN apt-get update \
    && apt-get install -y --no-install-recommends iptables \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /var/lib/vpcroute /run
COPY --from=build /out/vpcroute /vpcroute
ENTRYPOINT ["/vpcroute"]
