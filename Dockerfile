# cobrowse in a container (docs/deploy.md):
#   docker build -t cobrowse .
#   docker run --rm -p 8080:8080 -p 127.0.0.1:8081:8081 -e COBROWSE_AGENT_TOKEN=... \
#     cobrowse serve --upstream https://www.example.com --render
# With no arguments it runs the demo shop.

# 1. The browser-side bundles: the pinned rrweb packages copied into web/dist.
FROM node:20-bookworm-slim AS web
WORKDIR /src/web
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY web/build.mjs ./
RUN npm run build

# 2. The binary, static, with the bundles embedded.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
COPY --from=web /src/web/dist/ web/dist/
ARG VERSION=docker
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-X main.version=${VERSION}" -o /cobrowse ./cmd/cobrowse

# 3. The runtime: Debian's Chromium for --render, fonts for the pages it
# draws, tini as PID 1 (it forwards SIGTERM to cobrowse, which shuts down
# gracefully, and reaps the browsers' helper processes).
FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates chromium fonts-liberation fonts-noto-core tini \
 && rm -rf /var/lib/apt/lists/*
# Chromium's own sandbox needs user namespaces, which Docker's default
# seccomp profile refuses to a non-root user; the container is the sandbox
# instead (a non-root user, no capabilities needed, and a renderer that runs
# no page script and fetches nothing itself: docs/deploy.md). Build with
# --build-arg CHROMIUM_SANDBOX=on to keep Chromium's sandbox, and run with a
# seccomp profile that allows user namespaces.
ARG CHROMIUM_SANDBOX=off
RUN if [ "$CHROMIUM_SANDBOX" = off ]; then \
      echo 'export CHROMIUM_FLAGS="$CHROMIUM_FLAGS --no-sandbox"' > /etc/chromium.d/cobrowse-no-sandbox; \
    fi
RUN useradd --system --uid 10001 --user-group --create-home --home-dir /home/cobrowse cobrowse \
 && install -d -o cobrowse -g cobrowse /var/log/cobrowse
COPY --from=build /cobrowse /usr/local/bin/cobrowse
USER cobrowse
WORKDIR /home/cobrowse
# Listen on every interface of the container; publish the agent listener
# (8081) only where agents are (here: the host's loopback).
ENV COBROWSE_LISTEN=:8080 COBROWSE_AGENT_LISTEN=:8081
EXPOSE 8080 8081
ENTRYPOINT ["/usr/bin/tini", "--", "cobrowse"]
CMD ["demo"]
