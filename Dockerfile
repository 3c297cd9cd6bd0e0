# syntax=docker/dockerfile:1
#
# tailbox container image: one static binary on distroless (no shell, no
# package manager, CA certificates included), running as nonroot (65532).
#
#   docker build -t tailbox --build-arg VERSION=$(scripts/version.sh version) \
#     --build-arg COMMIT=$(scripts/version.sh commit) --build-arg DATE=$(scripts/version.sh date) .
#   docker run --rm -v $PWD/tailbox.yaml:/etc/tailbox/tailbox.yaml:ro \
#     -e TAILBOX_MYSQL_PASSWORD=... tailbox run -c /etc/tailbox/tailbox.yaml
#
# Set checkpoint.file to a path on the volume, e.g.
# /var/lib/tailbox/<name>.checkpoint.json: a relative path is relative to
# the config file's directory (/etc/tailbox), not to the WORKDIR.
#
# The binary is built by `make binary`, the command `make release` builds
# with (static, -trimpath, no VCS stamp or build ID, the date from the
# commit): with the same Go version as a release, it is byte-identical to
# that release's tailbox-VERSION-linux-ARCH. Without the build args it
# reports version "dev". Multi-platform: docker buildx build --platform
# linux/amd64,linux/arm64 . (cross-compiled on the build machine, no
# emulation).
# docker-compose.yml builds it for the MySQL 8.4 + Kafka setup. For
# production, pin both base images by digest (image@sha256:...).

FROM --platform=$BUILDPLATFORM golang:1.26 AS build
ARG TARGETOS TARGETARCH
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
# Only what the binary is built from (.dockerignore keeps .tmp/,
# bin/ and .git/ out of the build context).
COPY cmd ./cmd
COPY config ./config
COPY connector ./connector
COPY internal ./internal
COPY pkg ./pkg
COPY Makefile LICENSE NOTICE ./
COPY scripts/licenses.sh ./scripts/
ARG VERSION COMMIT DATE
# CGO_ENABLED=0 (set by make binary): a static binary with Go's own DNS
# resolver, which is what lets it run on distroless/static; time zone data
# is embedded in it.
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    make binary GOOS="$TARGETOS" GOARCH="$TARGETARCH" OUT=/out/tailbox \
      VERSION="$VERSION" COMMIT="$COMMIT" DATE="$DATE" \
 && scripts/licenses.sh "$TARGETOS/$TARGETARCH" >/out/THIRD_PARTY_LICENSES \
 && mkdir -p /out/state

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/tailbox /usr/local/bin/tailbox
COPY --from=build /src/LICENSE /src/NOTICE /out/THIRD_PARTY_LICENSES /usr/share/doc/tailbox/
# The checkpoint directory, owned by nonroot so that a named volume mounted
# here starts writable.
COPY --from=build --chown=65532:65532 /out/state /var/lib/tailbox
USER 65532:65532
WORKDIR /var/lib/tailbox
VOLUME ["/var/lib/tailbox"]
# http.listen (/metrics, /healthz, /readyz) when set to 0.0.0.0:7391.
EXPOSE 7391
ENTRYPOINT ["/usr/local/bin/tailbox"]
CMD ["run", "-c", "/etc/tailbox/tailbox.yaml"]
