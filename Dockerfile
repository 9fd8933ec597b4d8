# cobrowse in a container: `docker build -t cobrowse .` then
# `docker run -p 8080:8080 -p 127.0.0.1:8081:8081 cobrowse serve --upstream https://www.example.com --agent-listen :8081`
FROM node:20-bookworm-slim AS web
WORKDIR /src/web
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY web/ ./
RUN npm run build

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
COPY --from=web /src/web/dist/ web/dist/
RUN CGO_ENABLED=0 go build -ldflags "-X main.version=docker" -o /cobrowse ./cmd/cobrowse

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /cobrowse /usr/local/bin/cobrowse
USER nobody
EXPOSE 8080 8081
ENTRYPOINT ["cobrowse"]
CMD ["demo", "--listen", ":8080", "--agent-listen", ":8081"]
