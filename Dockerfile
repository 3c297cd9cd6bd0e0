# tailbox container image: a static binary on distroless, running as nonroot.
#   docker build -t tailbox --build-arg VERSION=$(git describe --always --dirty) .
#   docker run --rm -v $PWD/tailbox.yaml:/etc/tailbox/tailbox.yaml:ro \
#     -e TAILBOX_MYSQL_PASSWORD=... tailbox run -c /etc/tailbox/tailbox.yaml
# docker-compose.yml builds it for the MySQL 8.4 + Kafka setup.

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
# Only the Go sources: keeps .tmp/ (test databases) and bin/ out of the build.
COPY cmd ./cmd
COPY config ./config
COPY connector ./connector
COPY internal ./internal
COPY pkg ./pkg
ARG VERSION=docker
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" \
      -o /out/tailbox ./cmd/tailbox \
 && mkdir -p /out/state

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/tailbox /usr/local/bin/tailbox
# The checkpoint directory, owned by nonroot (65532) so that a named volume
# mounted here starts writable.
COPY --from=build --chown=65532:65532 /out/state /var/lib/tailbox
USER nonroot:nonroot
WORKDIR /var/lib/tailbox
VOLUME ["/var/lib/tailbox"]
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/tailbox"]
CMD ["run", "-c", "/etc/tailbox/tailbox.yaml"]
