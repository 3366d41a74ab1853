# Build the registry binary, then ship it alone on a small base.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /out/dockerregistry ./cmd/dockerregistry

FROM gcr.io/distroless/static-debian12
COPY --from=build /out/dockerregistry /usr/bin/dockerregistry
ENV REGISTRY_CONFIGURATION_PATH=/etc/registry/config.yml
EXPOSE 5000
ENTRYPOINT ["/usr/bin/dockerregistry"]
