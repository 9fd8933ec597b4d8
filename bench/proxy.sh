#!/usr/bin/env bash
# bench/proxy.sh — cobrowse's proxy against the upstream itself and against
# nginx proxy_pass + sub_filter injecting the same tag, in one run on loopback.
#
#   bash bench/proxy.sh            # from anywhere in the checkout
#
# It measures, with wrk, a 100 KiB HTML page and a 1 MiB image served by
# bench/upstream three ways (direct, through cobrowse, through nginx), and a
# fourth for reference: go-naive, a bare Go httputil.ReverseProxy that inserts
# the same tag as nginx and does nothing else (bench/upstream naive-proxy),
# which shows what net/http's proxying costs without cobrowse's work. It
# prints req/s, MB/s, p50/p99 latency, CPU per request and the ratios, then
# the time to first byte of a page whose upstream flushes its head and pauses
# (curl's time_starttransfer, and the first body byte as read by `upstream
# probe`).
# Results go to stdout; progress and notes to stderr.
#
# Settings (environment):
#   BENCH_DURATION=10s     length of each measurement (wrk -d)
#   BENCH_WARMUP=2s        unmeasured wrk run before each measurement (0 skips)
#   BENCH_THREADS=2        wrk threads          } identical for every target
#   BENCH_CONNECTIONS=32   wrk connections      }
#   BENCH_ROUNDS=1         rounds; each round runs direct, cobrowse, nginx in
#                          turn, and the table shows each cell's median
#   BENCH_PLAIN=1          1 adds a "plain" row: the same 100 KiB as
#                          application/octet-stream, which no proxy rewrites
#                          (what proxying alone costs, next to the html row)
#   BENCH_GZIP=0           1 adds an HTML run with "Accept-Encoding: gzip" for
#                          all three (upstream serves it pre-compressed;
#                          cobrowse decodes, injects, re-encodes; nginx asks
#                          identity, sub_filters and gzips at level 6)
#   BENCH_UPSTREAM_TLS=0   1 serves the upstream over https (HTTP/2 and
#                          HTTP/1.1, a self-signed certificate that every
#                          proxy verifies), as most production sites are;
#                          clients still reach the proxies over http. No
#                          cob-inject row then: an https upstream is never
#                          the origin of an http visitor, so cobrowse always
#                          rewrites its URLs
#   BENCH_TTFB_N=20        requests per target for the time to first byte
#   BENCH_SLOW=200ms       the slow page's pause after its head
#   BENCH_NGINX_WORKERS=auto   nginx worker_processes
#   BENCH_KEEP_TMP=0       1 keeps the temp dir (configs, logs) for inspection
#   BENCH_COBROWSE=        a cobrowse binary to measure instead of bin/cobrowse
#                          (e.g. one built from another commit, to compare
#                          builds in the same conditions); it is not rebuilt
#
# It installs wrk and nginx with apt-get when missing (as root; it says so),
# builds bin/cobrowse with `make build` when missing or older than the
# sources (unless BENCH_COBROWSE names another binary), starts the upstream,
# cobrowse, go-naive and nginx on free 127.0.0.1 ports,
# checks that each proxy injects the tag, and stops everything it
# started when it exits, however it exits.
#
# The load generator and the servers share the machine's cores: nothing is
# pinned, and the settings are the same for every target, so compare the
# numbers of one run side by side (the ratios), not across machines.

set -euo pipefail

DURATION=${BENCH_DURATION:-10s}
WARMUP=${BENCH_WARMUP:-2s}
THREADS=${BENCH_THREADS:-2}
CONNECTIONS=${BENCH_CONNECTIONS:-32}
ROUNDS=${BENCH_ROUNDS:-1}
GZIP=${BENCH_GZIP:-0}
PLAIN=${BENCH_PLAIN:-1}
TTFB_N=${BENCH_TTFB_N:-20}
SLOW=${BENCH_SLOW:-200ms}
NGINX_WORKERS=${BENCH_NGINX_WORKERS:-auto}
KEEP_TMP=${BENCH_KEEP_TMP:-0}
COBROWSE_BIN=${BENCH_COBROWSE:-}
UPSTREAM_TLS=${BENCH_UPSTREAM_TLS:-0}

TAG_NGINX='<script src="/__cobrowse/visitor.js" defer=""></script>'
# cobrowse adds a per-page nonce: <script src="/__cobrowse/visitor.js" nonce="…" defer=""></script>
TAG_COBROWSE_RE='<script src="/__cobrowse/visitor\.js" nonce="[^"]*" defer=""></script>'

say() { echo "==> $*" >&2; }
die() {
	echo "bench/proxy.sh: error: $*" >&2
	exit 1
}

for v in THREADS CONNECTIONS ROUNDS TTFB_N; do
	[[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "BENCH_$v must be a positive integer, not '${!v}'"
done
[[ $GZIP == 0 || $GZIP == 1 ]] || die "BENCH_GZIP must be 0 or 1"
[[ $PLAIN == 0 || $PLAIN == 1 ]] || die "BENCH_PLAIN must be 0 or 1"
[[ $UPSTREAM_TLS == 0 || $UPSTREAM_TLS == 1 ]] || die "BENCH_UPSTREAM_TLS must be 0 or 1"

# A relative BENCH_COBROWSE is relative to where the script was started.
[[ -z $COBROWSE_BIN || $COBROWSE_BIN == /* ]] || COBROWSE_BIN=$PWD/$COBROWSE_BIN
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

# ---------------------------------------------------------------- tools

APT_UPDATED=0
apt_install() { # package…
	if [[ $(id -u) != 0 ]]; then
		die "missing $*: run 'sudo apt-get install $*' (or run this script as root) and try again"
	fi
	local pkg candidate
	for pkg in "$@"; do
		candidate=$(apt-cache policy "$pkg" 2>/dev/null | awk '/Candidate:/ {print $2}')
		if [[ -z $candidate || $candidate == "(none)" ]] && [[ $APT_UPDATED == 0 ]]; then
			say "apt-get update (to look for $pkg)"
			apt-get update -qq >&2 || die "apt-get update failed"
			APT_UPDATED=1
			candidate=$(apt-cache policy "$pkg" 2>/dev/null | awk '/Candidate:/ {print $2}')
		fi
		[[ -n $candidate && $candidate != "(none)" ]] || die "Debian has no package $pkg here (apt-cache policy $pkg shows no candidate)"
	done
	say "installing $* with apt-get (Debian's packages)"
	# Keep the package's own service from starting on port 80: invoke-rc.d
	# honours policy-rc.d. Only add one if the machine has none, and remove
	# it right after.
	local policy=/usr/sbin/policy-rc.d added_policy=0
	if [[ ! -e $policy ]]; then
		trap 'rm -f /usr/sbin/policy-rc.d' EXIT
		printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && added_policy=1
	fi
	local rc=0
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2 || rc=$?
	if [[ $added_policy == 1 ]]; then
		rm -f "$policy"
		trap - EXIT
	fi
	[[ $rc == 0 ]] || die "apt-get install $* failed"
}

NGINX=$(command -v nginx || true)
[[ -z $NGINX && -x /usr/sbin/nginx ]] && NGINX=/usr/sbin/nginx
missing=()
command -v wrk >/dev/null || missing+=(wrk)
[[ -z $NGINX ]] && missing+=(nginx) # Debian's nginx binary has sub_filter (http_sub_module)
command -v curl >/dev/null || missing+=(curl)
if ((${#missing[@]})); then
	apt_install "${missing[@]}"
fi
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
[[ -x $NGINX ]] || die "nginx is not installed at $NGINX"
"$NGINX" -V 2>&1 | grep -q -- '--with-http_sub_module' ||
	die "$NGINX was built without sub_filter (--with-http_sub_module): install Debian's 'nginx' package"
command -v go >/dev/null || die "go is not on PATH (needed to build bin/cobrowse and bench/upstream)"

# bin/cobrowse: build it when missing or older than any source it is built from.
stale_source() {
	find . \( -path ./.git -o -path ./web/node_modules -o -path ./bench -o -path ./e2e -o -path ./bin \) -prune -o \
		-type f \( \( -name '*.go' ! -name '*_test.go' \) -o -name go.mod -o -name go.sum -o -path './web/*' -o -path './demo/*' \) \
		-newer bin/cobrowse -print -quit
}
if [[ -n $COBROWSE_BIN ]]; then
	[[ -x $COBROWSE_BIN ]] || die "BENCH_COBROWSE=$COBROWSE_BIN is not an executable file"
elif [[ ! -x bin/cobrowse ]]; then
	say "bin/cobrowse is missing: make build"
	make build >&2 || die "make build failed"
elif [[ -n $(stale_source) ]]; then
	say "bin/cobrowse is older than $(stale_source): make build"
	make build >&2 || die "make build failed"
fi
COBROWSE_BIN=${COBROWSE_BIN:-bin/cobrowse}

# ---------------------------------------------------------------- processes

TMP=$(mktemp -d "${TMPDIR:-/tmp}/cobrowse-bench.XXXXXX")
PIDS=()  # processes started here, stopped on exit
SIGS=()  # the signal that stops each one gracefully
NAMES=() # and its name, for messages
FOREGROUND_PID= # the wrk running now, if any

started() { # name pid signal
	NAMES+=("$1")
	PIDS+=("$2")
	SIGS+=("$3")
}

cleanup() {
	local rc=$? i pid n
	trap - EXIT INT TERM
	[[ -n ${FOREGROUND_PID:-} ]] && { kill -TERM "$FOREGROUND_PID" 2>/dev/null || true; }
	for i in "${!PIDS[@]}"; do
		kill -s "${SIGS[$i]}" "${PIDS[$i]}" 2>/dev/null || true
	done
	for i in "${!PIDS[@]}"; do
		pid=${PIDS[$i]}
		for ((n = 0; n < 50; n++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$pid" 2>/dev/null; then
			echo "bench/proxy.sh: ${NAMES[$i]} (pid $pid) did not stop on SIG${SIGS[$i]}: killing it" >&2
			kill -KILL "$pid" 2>/dev/null || true
		fi
		wait "$pid" 2>/dev/null || true
	done
	if [[ $rc != 0 ]]; then
		local f
		for f in "$TMP"/upstream.log "$TMP"/cobrowse.out "$TMP"/cobrowse.log "$TMP"/nginx/error.log; do
			[[ -s $f ]] && {
				echo "--- last lines of $f:" >&2
				tail -n 15 "$f" >&2
			}
		done
	fi
	if [[ $KEEP_TMP == 1 ]]; then
		echo "bench/proxy.sh: kept $TMP" >&2
	else
		rm -rf "$TMP"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

alive() { # name pid
	kill -0 "$2" 2>/dev/null || die "$1 exited during start-up"
}

# foreground runs a long command (wrk) in the background and waits for it, so
# that a TERM or INT reaches the trap at once rather than after the command;
# cleanup stops it too.
foreground() {
	"$@" &
	FOREGROUND_PID=$!
	local rc=0
	wait "$FOREGROUND_PID" || rc=$?
	FOREGROUND_PID=
	return "$rc"
}

# Other work on the machine skews every number: measure it before starting.
cpu_busy() { # percent of all CPU time used by anything during one second
	local c u1 n1 s1 i1 w1 q1 sq1 st1 u2 n2 s2 i2 w2 q2 sq2 st2 busy idle
	read -r c u1 n1 s1 i1 w1 q1 sq1 st1 _ </proc/stat
	sleep 1
	read -r c u2 n2 s2 i2 w2 q2 sq2 st2 _ </proc/stat
	busy=$(((u2 + n2 + s2 + q2 + sq2 + st2) - (u1 + n1 + s1 + q1 + sq1 + st1)))
	idle=$(((i2 + w2) - (i1 + w1)))
	echo $((100 * busy / (busy + idle > 0 ? busy + idle : 1)))
}
BUSY_BEFORE=$(cpu_busy)
if ((BUSY_BEFORE > 15)); then
	say "warning: the machine is already ${BUSY_BEFORE}% busy before the benchmark starts; its numbers will be skewed (see top)"
fi

# The upstream: built from this checkout, stdlib only.
say "building bench/upstream"
go build -o "$TMP/upstream" ./bench/upstream || die "go build ./bench/upstream failed"
SCHEME=http TLS_ARGS=()
if [[ $UPSTREAM_TLS == 1 ]]; then
	SCHEME=https TLS_ARGS=(-tls-cert-file "$TMP/upstream.pem")
fi
"$TMP/upstream" serve -listen 127.0.0.1:0 -addr-file "$TMP/upstream.addr" -slow "$SLOW" "${TLS_ARGS[@]}" >"$TMP/upstream.log" 2>&1 &
started upstream $! TERM
UPSTREAM_PID=$!
for ((n = 0; n < 100; n++)); do
	[[ -s $TMP/upstream.addr ]] && break
	alive upstream "${PIDS[-1]}"
	sleep 0.1
done
[[ -s $TMP/upstream.addr ]] || die "the upstream did not start listening within 10 s"
UPHOST=$(cat "$TMP/upstream.addr")
DIRECT=$SCHEME://$UPHOST
if [[ $UPSTREAM_TLS == 1 ]]; then
	# The upstream's certificate, for cobrowse, go-naive and upstream probe
	# (Go reads SSL_CERT_FILE) and for curl; nginx is told below.
	export SSL_CERT_FILE=$TMP/upstream.pem CURL_CA_BUNDLE=$TMP/upstream.pem
fi

# cobrowse, on ports of its choosing; it prints its visitor URL.
TOKEN=bench-$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
"$COBROWSE_BIN" serve --upstream "$DIRECT" --listen 127.0.0.1:0 --agent-listen 127.0.0.1:0 --agent-token "$TOKEN" \
	>"$TMP/cobrowse.out" 2>"$TMP/cobrowse.log" &
started cobrowse $! INT
COBROWSE_PID=$!
COBROWSE=
for ((n = 0; n < 100; n++)); do
	COBROWSE=$(sed -n 's|.*visitor URL:[[:space:]]*\(https\?://[^/[:space:]]*\).*|\1|p' "$TMP/cobrowse.out")
	[[ -n $COBROWSE ]] && break
	alive cobrowse "${PIDS[-1]}"
	sleep 0.1
done
[[ -n $COBROWSE ]] || die "cobrowse did not print its visitor URL within 10 s"

# go-naive: a bare httputil.ReverseProxy that injects the tag by
# sub_filter_once's rule and does nothing else (bench/upstream/naiveproxy.go),
# to tell cobrowse's own costs from those of Go's net/http.
"$TMP/upstream" naive-proxy -upstream "$DIRECT" -tag "$TAG_NGINX" -listen 127.0.0.1:0 -addr-file "$TMP/naive.addr" >"$TMP/naive.log" 2>&1 &
started go-naive $! TERM
NAIVE_PID=$!
for ((n = 0; n < 100; n++)); do
	[[ -s $TMP/naive.addr ]] && break
	alive go-naive "${PIDS[-1]}"
	sleep 0.1
done
[[ -s $TMP/naive.addr ]] || die "go-naive did not start listening within 10 s"
NAIVE=http://$(cat "$TMP/naive.addr")

# nginx: proxy_pass with upstream keep-alive (as cobrowse pools its upstream
# connections), sub_filter on an identity body, gzip for clients that ask.
# Two servers: "nginx" injects the tag only (the issue's comparison);
# "nginx+urls" also moves the upstream's absolute URLs to its own origin, as
# cobrowse does on every page (rewrite.URLRewriter) — the same work, done
# with nginx's plain string matching.
mkdir -p "$TMP/nginx"
NGINX_PORT=$("$TMP/upstream" freeport)
NGINX_URLS_PORT=$("$TMP/upstream" freeport)
[[ $NGINX_PORT != "$NGINX_URLS_PORT" ]] || NGINX_URLS_PORT=$("$TMP/upstream" freeport)
USER_LINE=
[[ $(id -u) == 0 ]] && USER_LINE='user root;' # workers must reach the temp dir (0700)
NGINX_TLS=
if [[ $UPSTREAM_TLS == 1 ]]; then
	NGINX_TLS="            proxy_ssl_verify on;
            proxy_ssl_trusted_certificate $TMP/upstream.pem;
            proxy_ssl_name localhost;
            proxy_ssl_session_reuse on;"
fi
nginx_location() { # extra sub_filter lines
	cat <<EOF
        gzip on;
        gzip_comp_level 6;
        location / {
            proxy_pass $SCHEME://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $UPHOST;
$NGINX_TLS
            proxy_set_header Accept-Encoding "";
            sub_filter '<head>' '<head>$TAG_NGINX';
$1
        }
EOF
}
cat >"$TMP/nginx/nginx.conf" <<EOF
$USER_LINE
worker_processes $NGINX_WORKERS;
daemon off;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    default_type application/octet-stream;
    client_body_temp_path $TMP/nginx/client_body;
    proxy_temp_path $TMP/nginx/proxy;
    fastcgi_temp_path $TMP/nginx/fastcgi;
    uwsgi_temp_path $TMP/nginx/uwsgi;
    scgi_temp_path $TMP/nginx/scgi;
    upstream origin {
        server $UPHOST;
        keepalive 64;
    }
    server {
        listen 127.0.0.1:$NGINX_PORT;
$(nginx_location "            sub_filter_once on;")
    }
    server {
        listen 127.0.0.1:$NGINX_URLS_PORT;
$(nginx_location "            sub_filter '$DIRECT' 'http://127.0.0.1:$NGINX_URLS_PORT';
            sub_filter '//$UPHOST' '//127.0.0.1:$NGINX_URLS_PORT';
            sub_filter_once off;")
    }
}
EOF
"$NGINX" -t -q -p "$TMP/nginx/" -e "$TMP/nginx/error.log" -c "$TMP/nginx/nginx.conf" 2>"$TMP/nginx/test.log" ||
	die "nginx rejected its configuration: $(cat "$TMP/nginx/test.log")"
"$NGINX" -p "$TMP/nginx/" -e "$TMP/nginx/error.log" -c "$TMP/nginx/nginx.conf" >"$TMP/nginx/stdout.log" 2>&1 &
started nginx $! TERM
NGINX_PID=$!
NGINXURL=http://127.0.0.1:$NGINX_PORT
NGINXURLS=http://127.0.0.1:$NGINX_URLS_PORT
for ((n = 0; n < 100; n++)); do
	curl -fsS -o /dev/null --max-time 1 "$NGINXURL/healthz" 2>/dev/null &&
		curl -fsS -o /dev/null --max-time 1 "$NGINXURLS/healthz" 2>/dev/null && break
	alive nginx "${PIDS[-1]}"
	sleep 0.1
done
for u in "$NGINXURL" "$NGINXURLS"; do
	curl -fsS -o /dev/null --max-time 2 "$u/healthz" || die "nginx did not answer on $u within 10 s"
done

# ---------------------------------------------------------------- checks

say "checking that cobrowse and nginx inject the tag (and the upstream does not)"
fetch() { # url [curl args…]
	local url=$1
	shift
	curl -fsS --max-time 10 "$@" "$url" || die "GET $url failed"
}
count() { grep -o -E -- "$1" | wc -l; }
for path in /page.html /slow.html; do
	body=$(fetch "$DIRECT$path")
	[[ $(count '/__cobrowse/visitor\.js' <<<"$body") == 0 ]] || die "the upstream's $path already holds the tag"
	body=$(fetch "$COBROWSE$path")
	[[ $(count "$TAG_COBROWSE_RE" <<<"$body") == 1 ]] || die "cobrowse did not inject the tag exactly once into $path"
	body=$(fetch "$COBROWSE$path" -H "Host: $UPHOST")
	[[ $(count "$TAG_COBROWSE_RE" <<<"$body") == 1 ]] || die "cobrowse (Host: $UPHOST) did not inject the tag exactly once into $path"
	for u in "$NGINXURL" "$NGINXURLS" "$NAIVE"; do
		body=$(fetch "$u$path")
		[[ $(count "$TAG_NGINX" <<<"$body") == 1 ]] || die "$u did not inject the tag exactly once into $path"
	done
done
# Who rewrites the upstream's own URLs: cobrowse (public origin ≠ upstream's)
# and nginx+urls do; cobrowse with the upstream's Host and plain nginx do not.
self_link() { grep -o 'href="https\?://[^/"]*' | sed 's|href="||'; } # the link's origin
[[ $(fetch "$COBROWSE/self.html" | self_link) == "$COBROWSE" ]] || die "cobrowse did not move the upstream's URL to its origin"
if [[ $UPSTREAM_TLS == 0 ]]; then
	[[ $(fetch "$COBROWSE/self.html" -H "Host: $UPHOST" | self_link) == "$DIRECT" ]] || die "cobrowse rewrote URLs although the Host was the upstream's"
fi
[[ $(fetch "$NGINXURLS/self.html" | self_link) == "$NGINXURLS" ]] || die "nginx+urls did not move the upstream's URL to its origin"
[[ $(fetch "$NGINXURL/self.html" | self_link) == "$DIRECT" ]] || die "nginx rewrote the upstream's URL"
for u in "$DIRECT" "$COBROWSE" "$NGINXURL" "$NAIVE"; do
	for want in image.jpg=1048576 page.bin=102400; do
		size=$(curl -fsS --max-time 10 -o /dev/null -w '%{size_download}' "$u/${want%=*}") || die "GET $u/${want%=*} failed"
		[[ $size == "${want#*=}" ]] || die "$u/${want%=*} is $size bytes, not ${want#*=} (it must pass untouched)"
	done
done
if [[ $GZIP == 1 ]]; then
	for u in "$DIRECT" "$COBROWSE" "$NGINXURL" "$NGINXURLS"; do
		enc=$(curl -fsS --max-time 10 -H 'Accept-Encoding: gzip' -o "$TMP/page.gz" -w '%header{content-encoding}' "$u/page.html") ||
			die "GET $u/page.html (gzip) failed"
		[[ $enc == gzip ]] || die "$u answered Accept-Encoding: gzip with Content-Encoding '$enc'"
		gzip -dc <"$TMP/page.gz" >"$TMP/page" || die "$u's gzip body does not decode"
		case $u in
		"$COBROWSE") [[ $(count "$TAG_COBROWSE_RE" <"$TMP/page") == 1 ]] || die "cobrowse did not inject the tag into the gzip page" ;;
		"$NGINXURL" | "$NGINXURLS") [[ $(count "$TAG_NGINX" <"$TMP/page") == 1 ]] || die "nginx ($u) did not inject the tag into the gzip page" ;;
		esac
	done
fi

# ---------------------------------------------------------------- load

cat >"$TMP/report.lua" <<'EOF'
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH requests=%d duration_us=%d bytes=%d p50_us=%d p99_us=%d sockerr=%d non2xx=%d\n",
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout, e.status))
end
EOF

declare -A RPS MBS P50 P99 BPR CPU_PROXY CPU_UP CPU_WRK
ERRORS=()

# CPU time per request, from /proc: user + system time of the proxy (cobrowse,
# or nginx's workers), of the upstream and of wrk over each measurement. The
# kernel's softirq time (much of loopback TCP) is charged to no process and
# is not in these. When wrk and the servers keep every core busy, req/s is
# about the number of cores over the sum of a row's CPU times, which says
# where the time goes when the ratios move.
TICK=$(getconf CLK_TCK)
cpu_ticks() { # pid…: their user + system time so far, in clock ticks
	local pid t total=0
	for pid in "$@"; do
		t=$(awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$pid/stat" 2>/dev/null) || continue
		total=$((total + t))
	done
	echo "$total"
}
children_ms() { # sets CHILDREN_MS: user + system ms of the children this shell waited for (wrk)
	# times is a builtin: run here, not in a subshell, it reports this shell's children.
	times >"$TMP/times"
	CHILDREN_MS=$(awk 'NR == 2 {for (i = 1; i <= 2; i++) {split($i, a, /[ms]/); t += a[1] * 60 + a[2]}; printf "%.0f", t * 1000}' "$TMP/times")
}
proxy_pids() { # target: the processes that proxy its requests
	case $1 in
	cobrowse | cob-inject) echo "$COBROWSE_PID" ;;
	nginx | nginx+urls) pgrep -P "$NGINX_PID" | tr '\n' ' ' ;;
	go-naive) echo "$NAIVE_PID" ;;
	esac
}

measure() { # kind target url [header…]
	local kind=$1 target=$2 url=$3 hdr=() line h
	shift 3
	for h in "$@"; do hdr+=(-H "$h"); done
	if [[ $WARMUP != 0 && $WARMUP != 0s ]]; then
		foreground wrk -t"$THREADS" -c"$CONNECTIONS" -d"$WARMUP" --timeout 10s "${hdr[@]}" "$url" >/dev/null ||
			die "wrk failed on $url"
	fi
	local pids proxy0 up0 wrk0
	pids=$(proxy_pids "$target")
	proxy0=$(cpu_ticks $pids) up0=$(cpu_ticks "$UPSTREAM_PID")
	children_ms
	wrk0=$CHILDREN_MS
	foreground wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --timeout 10s -s "$TMP/report.lua" "${hdr[@]}" "$url" >"$TMP/wrk.out" ||
		die "wrk failed on $url: $(cat "$TMP/wrk.out")"
	local proxy1 up1 wrk1
	proxy1=$(cpu_ticks $pids) up1=$(cpu_ticks "$UPSTREAM_PID")
	children_ms
	wrk1=$CHILDREN_MS
	line=$(grep '^BENCH ' "$TMP/wrk.out") || die "wrk printed no result for $url: $(cat "$TMP/wrk.out")"
	local requests duration_us bytes p50_us p99_us sockerr non2xx kv
	for kv in ${line#BENCH }; do
		local "${kv%%=*}=${kv#*=}"
	done
	((requests > 0)) || die "wrk made no request to $url"
	if ((sockerr + non2xx > 0)); then
		ERRORS+=("$kind $target: $sockerr socket errors, $non2xx non-2xx/3xx responses")
	fi
	local k="$kind,$target"
	RPS[$k]+="$(awk -v r="$requests" -v d="$duration_us" 'BEGIN {printf "%.1f", r / (d / 1e6)}') "
	MBS[$k]+="$(awk -v b="$bytes" -v d="$duration_us" 'BEGIN {printf "%.1f", b / (d / 1e6) / 1e6}') "
	P50[$k]+="$(awk -v u="$p50_us" 'BEGIN {printf "%.3f", u / 1000}') "
	P99[$k]+="$(awk -v u="$p99_us" 'BEGIN {printf "%.3f", u / 1000}') "
	BPR[$k]+="$((bytes / requests)) "
	CPU_PROXY[$k]+="$(awk -v t=$((proxy1 - proxy0)) -v hz="$TICK" -v r="$requests" 'BEGIN {printf "%.4f", t / hz * 1000 / r}') "
	CPU_UP[$k]+="$(awk -v t=$((up1 - up0)) -v hz="$TICK" -v r="$requests" 'BEGIN {printf "%.4f", t / hz * 1000 / r}') "
	CPU_WRK[$k]+="$(awk -v t=$((wrk1 - wrk0)) -v r="$requests" 'BEGIN {printf "%.4f", t / r}') "
	say "$(printf '%-10s %-10s %10.0f req/s  p50 %8.3f ms  p99 %8.3f ms' "$kind" "$target" \
		"$(awk -v r="$requests" -v d="$duration_us" 'BEGIN {print r / (d / 1e6)}')" \
		"$(awk -v u="$p50_us" 'BEGIN {print u / 1000}')" "$(awk -v u="$p99_us" 'BEGIN {print u / 1000}')")"
}

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{v[NR] = $1} END {if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

KINDS=(html image)
[[ $PLAIN == 1 ]] && KINDS=(html plain image)
[[ $GZIP == 1 ]] && KINDS+=(html-gzip)
# cobrowse: as deployed (public origin ≠ upstream's: the tag, and the
# upstream's absolute URLs moved to the public origin); cob-inject: requests
# carry the upstream's Host, so the origins match and cobrowse only injects
# (not with an https upstream: see BENCH_UPSTREAM_TLS).
# go-naive neither decodes nor compresses, so it sits out html-gzip.
targets_of() { # kind
	local inject=cob-inject
	[[ $UPSTREAM_TLS == 1 ]] && inject=
	case $1 in
	html) echo direct cobrowse $inject nginx nginx+urls go-naive ;;
	html-gzip) echo direct cobrowse $inject nginx nginx+urls ;;
	*) echo direct cobrowse nginx go-naive ;;
	esac
}
url_of() { # target
	case $1 in
	direct) echo "$DIRECT" ;;
	cobrowse | cob-inject) echo "$COBROWSE" ;;
	nginx) echo "$NGINXURL" ;;
	nginx+urls) echo "$NGINXURLS" ;;
	go-naive) echo "$NAIVE" ;;
	esac
}

say "load: wrk -t$THREADS -c$CONNECTIONS -d$DURATION (warm-up $WARMUP) per cell, $ROUNDS round(s), $(nproc) CPUs shared by wrk and the servers"
for ((round = 1; round <= ROUNDS; round++)); do
	((ROUNDS > 1)) && say "round $round of $ROUNDS"
	for kind in "${KINDS[@]}"; do
		for target in $(targets_of "$kind"); do
			hdrs=()
			[[ $target == cob-inject ]] && hdrs+=("Host: $UPHOST")
			case $kind in
			html) measure "$kind" "$target" "$(url_of "$target")/page.html" "${hdrs[@]}" ;;
			plain) measure "$kind" "$target" "$(url_of "$target")/page.bin" "${hdrs[@]}" ;;
			image) measure "$kind" "$target" "$(url_of "$target")/image.jpg" "${hdrs[@]}" ;;
			html-gzip) measure "$kind" "$target" "$(url_of "$target")/page.html" "${hdrs[@]}" "Accept-Encoding: gzip" ;;
			esac
		done
	done
done

# ---------------------------------------------------------------- time to first byte

say "time to first byte on /slow.html (head flushed, then a $SLOW pause): $TTFB_N requests per target, each on a new connection"
declare -A TTFB FIRSTBODY TOTAL
TTFB_TARGETS=(direct cobrowse nginx)
for target in "${TTFB_TARGETS[@]}"; do
	url="$(url_of "$target")/slow.html"
	TTFB[$target]=$(for ((i = 0; i < TTFB_N; i++)); do
		curl -fsS -o /dev/null --max-time 10 -w '%{time_starttransfer}\n' "$url" || die "curl $url failed"
	done | awk '{printf "%.3f ", $1 * 1000}' | median)
	probe=$("$TMP/upstream" probe -n "$TTFB_N" "$url") || die "probe $url failed"
	for kv in $probe; do
		case ${kv%%=*} in
		body_ms) FIRSTBODY[$target]=${kv#*=} ;;
		total_ms) TOTAL[$target]=${kv#*=} ;;
		esac
	done
done

# ---------------------------------------------------------------- report

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "-"}'; }
cell() { # array key
	local -n arr=$1
	median <<<"${arr[$2]}"
}

echo
echo "cobrowse proxy benchmark — $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "machine: $(nproc) CPUs ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), $(uname -sr); wrk and the servers share them; ${BUSY_BEFORE}% busy before the run"
echo "cobrowse: $COBROWSE_BIN, $("$COBROWSE_BIN" version 2>/dev/null | head -n 1 || echo '?'); $("$NGINX" -v 2>&1); $(wrk --version 2>&1 | head -n 1 | awk '{print $1, $2}'); $(go version | awk '{print $3}')"
echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION (warm-up: $WARMUP) per cell; median of $ROUNDS round(s); nginx worker_processes $NGINX_WORKERS, upstream keepalive, sub_filter on identity bodies"
[[ $UPSTREAM_TLS == 1 ]] && echo "upstream over https (HTTP/2 and HTTP/1.1 offered, self-signed certificate verified by every proxy); clients reach the proxies over http"
echo "cobrowse = as deployed (tag + upstream URLs moved to the public origin); cob-inject = same binary, Host = upstream's (tag only); nginx = tag only; nginx+urls = tag + sub_filter of the upstream's origin; go-naive = bare Go ReverseProxy + tag (bench/upstream naive-proxy)"
echo
printf '| %-9s | %-10s | %10s | %9s | %9s | %9s | %8s |\n' page target 'req/s' 'MB/s' 'p50 ms' 'p99 ms' 'B/resp'
printf '|%s|%s|%s|%s|%s|%s|%s|\n' ----------- ------------ -----------: ----------: ----------: ----------: ---------:
for kind in "${KINDS[@]}"; do
	for target in $(targets_of "$kind"); do
		k="$kind,$target"
		printf '| %-9s | %-10s | %10.0f | %9.1f | %9.3f | %9.3f | %8.0f |\n' "$kind" "$target" \
			"$(cell RPS "$k")" "$(cell MBS "$k")" "$(cell P50 "$k")" "$(cell P99 "$k")" "$(cell BPR "$k")"
	done
done
echo
rps() { # kind target: median req/s, or empty if not measured
	[[ -n ${RPS[$1,$2]:-} ]] && cell RPS "$1,$2"
	return 0
}
printf '| %-9s | %14s | %16s | %19s | %15s | %12s |\n' page cobrowse/nginx cob-inject/nginx cobrowse/nginx+urls cobrowse/direct nginx/direct
printf '|%s|%s|%s|%s|%s|%s|\n' ----------- ---------------: -----------------: --------------------: ----------------: -------------:
for kind in "${KINDS[@]}"; do
	c=$(rps "$kind" cobrowse) n=$(rps "$kind" nginx) d=$(rps "$kind" direct) ci=$(rps "$kind" cob-inject) nu=$(rps "$kind" nginx+urls)
	printf '| %-9s | %14s | %16s | %19s | %15s | %12s |\n' "$kind" "$(ratio "$c" "$n")" \
		"$([[ -n $ci ]] && ratio "$ci" "$n" || echo -)" "$([[ -n $nu ]] && ratio "$c" "$nu" || echo -)" \
		"$(ratio "$c" "$d")" "$(ratio "$n" "$d")"
done
echo "(ratios of req/s)"
naive_ratios=
for kind in "${KINDS[@]}"; do
	g=$(rps "$kind" go-naive)
	[[ -n $g ]] && naive_ratios+="${naive_ratios:+, }$kind $(ratio "$g" "$(rps "$kind" nginx)")×"
done
echo "go-naive / nginx (net/http's own cost: a bare ReverseProxy inserting the tag, nothing else): $naive_ratios"
echo
printf '| %-9s | %-10s | %14s | %14s | %10s | %9s |\n' page target 'proxy CPU ms' 'upstream CPU ms' 'wrk CPU ms' 'sum ms'
printf '|%s|%s|%s|%s|%s|%s|\n' ----------- ------------ ---------------: ----------------: -----------: ----------:
for kind in "${KINDS[@]}"; do
	for target in $(targets_of "$kind"); do
		k="$kind,$target"
		cp=$(cell CPU_PROXY "$k") cu=$(cell CPU_UP "$k") cw=$(cell CPU_WRK "$k")
		printf '| %-9s | %-10s | %14.3f | %15.3f | %10.3f | %9.3f |\n' "$kind" "$target" "$cp" "$cu" "$cw" \
			"$(awk -v a="$cp" -v b="$cu" -v c="$cw" 'BEGIN {print a + b + c}')"
	done
done
echo "(CPU time per request, user + system, median of the rounds; softirq time is charged to no process and not included)"
echo
printf '| %-9s | %22s | %20s | %14s |\n' slow.html 'TTFB ms (curl), median' 'first body byte ms' 'whole page ms'
printf '|%s|%s|%s|%s|\n' ----------- -----------------------: ---------------------: ---------------:
for target in "${TTFB_TARGETS[@]}"; do
	printf '| %-9s | %22.3f | %20.3f | %14.3f |\n' "$target" "${TTFB[$target]}" "${FIRSTBODY[$target]}" "${TOTAL[$target]}"
done
diff_ms() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%+.3f", a - b}'; }
if [[ $UPSTREAM_TLS == 1 ]]; then
	echo "(direct is over https: its time includes a TLS handshake, which the proxies' plain-http clients do not make and their kept-alive upstream connections do not repeat)"
fi
echo "TTFB − direct: cobrowse $(diff_ms "${TTFB[cobrowse]}" "${TTFB[direct]}") ms, nginx $(diff_ms "${TTFB[nginx]}" "${TTFB[direct]}") ms" \
	"(first body byte: cobrowse $(diff_ms "${FIRSTBODY[cobrowse]}" "${FIRSTBODY[direct]}") ms, nginx $(diff_ms "${FIRSTBODY[nginx]}" "${FIRSTBODY[direct]}") ms)"
echo

goal() { # description met?
	if [[ $2 == 1 ]]; then echo "  met      $1"; else echo "  NOT MET  $1"; fi
}
c=$(cell RPS html,cobrowse) n=$(cell RPS html,nginx)
echo "goals (issue 3):"
like_for_like="cobrowse/nginx+urls $(ratio "$c" "$(rps html nginx+urls)")×"
ci=$(rps html cob-inject)
[[ -n $ci ]] && like_for_like="cob-inject/nginx $(ratio "$ci" "$n")×, $like_for_like"
goal "HTML with injection: cobrowse req/s ≥ nginx+sub_filter ($(ratio "$c" "$n")×; like for like: $like_for_like)" \
	"$(awk -v c="$c" -v n="$n" 'BEGIN {print (c >= n)}')"
c=$(cell RPS image,cobrowse) d=$(cell RPS image,direct)
goal "image: cobrowse req/s ≥ 0.9× direct ($(ratio "$c" "$d")×)" "$(awk -v c="$c" -v d="$d" 'BEGIN {print (c >= 0.9 * d)}')"
goal "slow upstream: cobrowse TTFB within 1 ms of direct ($(diff_ms "${TTFB[cobrowse]}" "${TTFB[direct]}") ms; first body byte $(diff_ms "${FIRSTBODY[cobrowse]}" "${FIRSTBODY[direct]}") ms)" \
	"$(awk -v c="${TTFB[cobrowse]}" -v d="${TTFB[direct]}" -v cb="${FIRSTBODY[cobrowse]}" -v db="${FIRSTBODY[direct]}" 'BEGIN {print (c - d <= 1 && cb - db <= 1)}')"

if ((${#ERRORS[@]})); then
	echo
	echo "measurement errors (the numbers above are suspect):"
	printf '  %s\n' "${ERRORS[@]}"
	exit 2
fi
