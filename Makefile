# cobrowse — the two commands a newcomer needs are `make demo` and `make test`.
# Both install what is missing (the pinned npm packages; Debian's chromium for
# the tests, with apt-get when run as root) and say so.

GO      ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

RRWEB_BUNDLES := web/dist/rrweb-record.min.js web/dist/rrweb-replay.min.js web/dist/rrweb-replay.css

.PHONY: all build demo test bench bench-proxy fuzz web chromium clean

all: build

## build: the cobrowse binary in bin/ (installs the pinned npm packages first if missing)
build: web
	@echo "==> building bin/cobrowse ($(VERSION))"
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/cobrowse ./cmd/cobrowse

## demo: run cobrowse in front of the built-in demo shop, with Rendered mode
demo: build chromium
	@echo "==> starting the demo: open the visitor URL in one window and the agent sign-in URL in another"
	./bin/cobrowse demo --render

## test: gofmt, go vet, and every test (unit and end-to-end in headless Chromium)
test: web chromium
	@echo "==> checking formatting (gofmt)"
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './web/node_modules/*')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	@echo "==> go vet ./..."
	$(GO) vet ./...
	@echo "==> go test -race ./... (end-to-end tests start headless Chromium)"
	$(GO) test -race -count=1 -timeout 15m ./...

## bench: the micro-benchmarks recorded in docs/benchmarks.md
bench: web
	$(GO) test -run '^$$' -bench . -benchmem ./rewrite/ ./session/

## bench-proxy: cobrowse vs the upstream direct vs nginx+sub_filter, on loopback (installs wrk and nginx)
bench-proxy: build
	bash bench/proxy.sh

## fuzz: run each fuzz target for FUZZTIME (default 1m each)
FUZZTIME ?= 1m
FUZZ_TARGETS := rewrite:FuzzInjector rewrite:FuzzURLRewriterMetaCSP rewrite:FuzzTagAttrs rewrite:FuzzAllowVisitor rewrite:FuzzURLRewriter rewrite:FuzzNewOrigin rewrite:FuzzAppendCSSURLs \
	proxy:FuzzRewriteResponseHeaders session:FuzzVisitorMessages session:FuzzIdentityVerify \
	policies:FuzzParse policies:FuzzDetectors policies:FuzzRedactor policies:FuzzRedactorNeverLeaks policies:FuzzNumericEvent \
	policies:FuzzAppendString policies:FuzzDecodeFullSnapshot policies:FuzzDecodeMutation policies:FuzzUnquote policies:FuzzRedactURL natsbus:FuzzSplitJoin \
	assets:FuzzParseTarget assets:FuzzRefusal assets:FuzzCacheControl assets:FuzzFetchURL internal/contentcoding:FuzzNegotiation
fuzz: web
	@for t in $(FUZZ_TARGETS); do pkg=$${t%%:*}; name=$${t##*:}; \
	  echo "==> fuzzing $$name in ./$$pkg for $(FUZZTIME)"; \
	  $(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) ./$$pkg/ || exit 1; done

web: $(RRWEB_BUNDLES)

web/node_modules/.package-lock.json: web/package.json web/package-lock.json
	@command -v npm >/dev/null || { echo "npm is missing: install Node.js (Debian: apt-get install nodejs npm)"; exit 1; }
	@echo "==> installing the pinned npm packages (npm ci in web/)"
	cd web && npm ci --no-audit --no-fund

$(RRWEB_BUNDLES) &: web/node_modules/.package-lock.json web/build.mjs
	@echo "==> copying the rrweb bundles into web/dist for the Go binary to embed"
	cd web && npm run --silent build

## chromium: Debian's Chromium for the end-to-end tests (never a downloaded browser)
chromium:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
	  echo "==> installing Debian's chromium for Rendered mode and the end-to-end tests (apt-get install chromium)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else \
	  echo "Rendered mode and the end-to-end tests need /usr/bin/chromium: run 'sudo apt-get install chromium' and try again."; exit 1; \
	fi

clean:
	rm -rf bin web/dist/*.js web/dist/*.css web/node_modules
