// Package metrics exposes cobrowse to Prometheus (docs/deploy.md lists every
// series). Most series are read at scrape time from the Stats methods of the
// parts that own them (the session hub, the Chromium pool, the renderer, the
// asset cache, the proxy), so that no hot path knows about Prometheus. The two that
// have no Stats to read are kept here: the redactions by cause, which the
// redactors report when a page ends, and the hub's fan-out latency, which
// the hub reports per delivered message (session.Config.OnDeliver).
package metrics

import (
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cobrowse/cobrowse/assets"
	"github.com/cobrowse/cobrowse/browserpool"
	"github.com/cobrowse/cobrowse/natsbus"
	"github.com/cobrowse/cobrowse/proxy"
	"github.com/cobrowse/cobrowse/session"
)

// Metrics is cobrowse's registry. Create it with New, add the parts the
// server runs, and serve Handler. Its methods are safe for concurrent use.
type Metrics struct {
	reg        *prometheus.Registry
	redactions *prometheus.CounterVec
	fanout     prometheus.Histogram
}

// fanoutBuckets span a loopback delivery (well under a millisecond) to an
// agent that cannot keep up (seconds); the goal is p99 ≤ 100 ms.
var fanoutBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}

// New returns a registry with the Go runtime and process collectors, the
// redactions counter and the fan-out latency histogram.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		redactions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cobrowse_redactions_total",
			Help: "Redactions made on pages agents saw, by cause (mask, remove, inputs, block_page, dropped, or \"detector NAME\"); counted when the page ends.",
		}, []string{"cause"}),
		fanout: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "cobrowse_fanout_latency_seconds",
			Help:    "Time from a visitor batch reaching the hub to its events message being handed to an agent's connection (redaction and the agent's queue included).",
			Buckets: fanoutBuckets,
		}),
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.redactions,
		m.fanout,
	)
	return m
}

// Handler serves the registry in the Prometheus text format (or
// OpenMetrics, if the scraper asks for it). Errors while gathering are
// logged and the series that could be gathered are served.
func (m *Metrics) Handler(logger *slog.Logger) http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelError),
		ErrorHandling:     promhttp.ContinueOnError,
		EnableOpenMetrics: true,
	})
}

// ObserveFanout records one delivery's fan-out latency: the hub's
// session.Config.OnDeliver.
func (m *Metrics) ObserveFanout(d time.Duration) { m.fanout.Observe(d.Seconds()) }

// CountRedactions adds a page's redaction counts (policies.PageReport.Counts,
// keyed like "mask .secret" or "detector email") to
// cobrowse_redactions_total. The selectors are left out of the label, so
// that its values stay few whatever the policy or the visitor sends.
func (m *Metrics) CountRedactions(counts map[string]int) {
	for key, n := range counts {
		if n > 0 {
			m.redactions.WithLabelValues(redactionCause(key)).Add(float64(n))
		}
	}
}

// redactionCause turns a policies.Redactor count key into a label value:
// the kind of redaction, and a detector's name, which the policy bounds.
func redactionCause(key string) string {
	if name, ok := strings.CutPrefix(key, "detector "); ok {
		return "detector " + name
	}
	kind, _, _ := strings.Cut(key, " ")
	kind = strings.TrimSuffix(kind, ":")
	switch kind {
	case "mask", "remove", "inputs", "block_page", "dropped":
		return kind
	}
	return "other"
}

// AddHub adds the hub's series, read from hub.Stats at every scrape.
func (m *Metrics) AddHub(hub interface{ Stats() session.Stats }) {
	m.reg.MustRegister(newStatsCollector(hub.Stats,
		gauge("cobrowse_sessions", "Live co-browsing sessions.", func(s session.Stats) int64 { return int64(s.Sessions) }),
		gauge("cobrowse_visitor_tabs", "Visitor tabs of the live sessions, connected or not.", func(s session.Stats) int64 { return int64(s.Tabs) }),
		gauge("cobrowse_visitor_connections", "Visitor tabs connected now.", func(s session.Stats) int64 { return int64(s.Visitors) }),
		gauge("cobrowse_agents", "Agents watching a session now.", func(s session.Stats) int64 { return int64(s.Agents) }),
		counter("cobrowse_visitor_batches_total", "Visitor event batches taken by the hub.", func(s session.Stats) uint64 { return s.Batches }),
		counter("cobrowse_visitor_events_total", "rrweb events received from visitors, before redaction.", func(s session.Stats) uint64 { return s.Events }),
		counter("cobrowse_agent_messages_total", "Messages handed to agents' connections.", func(s session.Stats) uint64 { return s.AgentMessages }),
		counter("cobrowse_agent_resyncs_total", "Times an agent fell too far behind, lost its queue and was resynced from the session's log.", func(s session.Stats) uint64 { return s.Resyncs }),
	))
}

// AddPool adds the Chromium pool's series (Rendered mode).
func (m *Metrics) AddPool(pool interface{ Stats() browserpool.Stats }) {
	m.reg.MustRegister(newStatsCollector(pool.Stats,
		counter("cobrowse_render_leases_total", "Chromium tabs leased for rendering.", func(s browserpool.Stats) uint64 { return s.Leases }),
		counter("cobrowse_render_lease_waits_total", "Leases that queued for a free tab.", func(s browserpool.Stats) uint64 { return s.Waits }),
		counter("cobrowse_render_lease_rejections_total", "Leases refused at once because the queue was full (--render-queue).", func(s browserpool.Stats) uint64 { return s.Rejections }),
		counter("cobrowse_render_lease_timeouts_total", "Leases that waited --render-wait for a tab in vain.", func(s browserpool.Stats) uint64 { return s.Timeouts }),
		counter("cobrowse_render_tabs_lost_total", "Leased tabs lost to a crash, a detach or a failed probe.", func(s browserpool.Stats) uint64 { return s.TabsLost }),
		counter("cobrowse_render_browsers_started_total", "Chromium processes started, replacements included.", func(s browserpool.Stats) uint64 { return s.BrowsersStarted }),
		counter("cobrowse_render_browsers_lost_total", "Chromium processes that crashed or failed a health probe.", func(s browserpool.Stats) uint64 { return s.BrowsersLost }),
		counter("cobrowse_render_browsers_recycled_total", "Chromium processes drained for their lease count, age or memory.", func(s browserpool.Stats) uint64 { return s.BrowsersRecycled }),
		gauge("cobrowse_render_browsers", "Chromium processes running now, draining ones included.", func(s browserpool.Stats) int64 { return int64(s.Browsers) }),
		gauge("cobrowse_render_tabs_busy", "Chromium tabs leased or being opened now.", func(s browserpool.Stats) int64 { return int64(s.Busy) }),
		gauge("cobrowse_render_queue", "Leases waiting for a free tab now.", func(s browserpool.Stats) int64 { return int64(s.Waiting) }),
	))
}

// AddRenderer adds the renderer's series (Rendered mode).
func (m *Metrics) AddRenderer(r interface {
	Stats() browserpool.RenderStats
}) {
	m.reg.MustRegister(newStatsCollector(r.Stats,
		gauge("cobrowse_rendered_sessions", "Sessions rendering in Chromium now (watched, or lingering after the last viewer).", func(s browserpool.RenderStats) int64 { return int64(s.Sessions) }),
		counter("cobrowse_renderings_started_total", "Renderings started.", func(s browserpool.RenderStats) uint64 { return s.Started }),
		counter("cobrowse_screencast_frames_total", "Screencast frames received from the rendering tabs; rate() of it is the frames per second.", func(s browserpool.RenderStats) uint64 { return s.Frames }),
	))
}

// AddAssetCache adds the asset cache's series.
func (m *Metrics) AddAssetCache(cache interface{ Stats() assets.CacheStats }) {
	m.reg.MustRegister(newStatsCollector(cache.Stats,
		counter("cobrowse_asset_cache_hits_total", "Asset requests answered from the cache.", func(s assets.CacheStats) uint64 { return s.Hits }),
		counter("cobrowse_asset_cache_misses_total", "Asset requests the cache could not answer.", func(s assets.CacheStats) uint64 { return s.Misses }),
		counter("cobrowse_asset_cache_evictions_total", "Asset bodies dropped to make room.", func(s assets.CacheStats) uint64 { return s.Evictions }),
		gauge("cobrowse_asset_cache_bytes", "Bytes the asset cache holds (bodies and index), at most --asset-cache-mib.", func(s assets.CacheStats) int64 { return s.Bytes }),
		gauge("cobrowse_asset_cache_entries", "Asset bodies the cache holds.", func(s assets.CacheStats) int64 { return int64(s.Entries) }),
		gauge("cobrowse_asset_cache_urls", "URLs the cache indexes, shared and per session.", func(s assets.CacheStats) int64 { return int64(s.URLs) }),
	))
}

// AddProxy adds the series of the proxies that front the sites, one set per
// site: sites maps the value of their "site" label to the Stats method of
// the site's proxy. The label's values are as many as the configured sites.
func (m *Metrics) AddProxy(sites map[string]func() proxy.Stats) {
	m.reg.MustRegister(newLabelledCollector("site", sites,
		counter("cobrowse_proxy_requests_total", "Requests to the fronted site that the proxy handled.", func(s proxy.Stats) uint64 { return s.Requests }),
		counter("cobrowse_proxy_upstream_errors_total", "Requests the proxy answered with its own 502, 504 or 508: the site could not be reached, did not answer in time, sent a response that could not be decoded, or was cobrowse itself (a loop).", func(s proxy.Stats) uint64 { return s.UpstreamErrors }),
		counter("cobrowse_proxy_pages_total", "HTML documents served with the visitor script.", func(s proxy.Stats) uint64 { return s.Pages }),
		counter("cobrowse_proxy_pages_without_snippet_total", "HTML responses served without the visitor script, which the proxy could not put in (each is logged): visits agents cannot see.", func(s proxy.Stats) uint64 { return s.PagesWithoutSnippet }),
		counter("cobrowse_proxy_responses_cut_total", "Responses that ended incomplete after their headers went out: the visitor went away or stopped reading, or the site failed or stalled in the middle.", func(s proxy.Stats) uint64 { return s.ResponsesCut }),
	))
}

// AddCluster adds the series of a cluster node (--nats).
func (m *Metrics) AddCluster(bus interface{ Stats() natsbus.Stats }) {
	m.reg.MustRegister(newStatsCollector(bus.Stats,
		gauge("cobrowse_cluster_remote_sessions", "Sessions other nodes of the cluster hold.", func(s natsbus.Stats) int64 { return int64(s.RemoteSessions) }),
		gauge("cobrowse_cluster_relays", "Agents of other nodes watching this node's sessions.", func(s natsbus.Stats) int64 { return int64(s.Relays) }),
		gauge("cobrowse_cluster_feeds", "Agents of this node watching other nodes' sessions.", func(s natsbus.Stats) int64 { return int64(s.Feeds) }),
		counter("cobrowse_cluster_takeovers_total", "Sessions this node took over from another node (its visitor reconnected here).", func(s natsbus.Stats) uint64 { return s.Takeovers }),
		counter("cobrowse_cluster_releases_total", "Sessions this node let another node take over.", func(s natsbus.Stats) uint64 { return s.Releases }),
		counter("cobrowse_cluster_store_failures_total", "Visitor batches JetStream did not store; a takeover would miss them.", func(s natsbus.Stats) uint64 { return s.StoreFailures }),
	))
}

// series is one series, read from a Stats value S.
type series[S any] struct {
	name, help string
	kind       prometheus.ValueType
	value      func(S) float64
}

func gauge[S any](name, help string, value func(S) int64) series[S] {
	return series[S]{name, help, prometheus.GaugeValue, func(s S) float64 { return float64(value(s)) }}
}

func counter[S any](name, help string, value func(S) uint64) series[S] {
	return series[S]{name, help, prometheus.CounterValue, func(s S) float64 { return float64(value(s)) }}
}

// statsCollector reads the Stats methods of its sources once per scrape and
// turns their fields into series: either one source and series without
// labels, or several sources told apart by the value of one label.
type statsCollector[S any] struct {
	descs   []*prometheus.Desc // one per series, with the label if any
	series  []series[S]
	sources []statsSource[S] // in the order of their label values
}

// A statsSource is one Stats method, with its label value (none if the
// collector has no label).
type statsSource[S any] struct {
	labelValues []string
	stats       func() S
}

// newStatsCollector returns a collector of series without labels, read from
// stats.
func newStatsCollector[S any](stats func() S, ss ...series[S]) *statsCollector[S] {
	return newCollector(nil, []statsSource[S]{{stats: stats}}, ss)
}

// newLabelledCollector returns a collector of series labelled label, read
// from the Stats method of each label value in sources.
func newLabelledCollector[S any](label string, sources map[string]func() S, ss ...series[S]) *statsCollector[S] {
	var list []statsSource[S]
	for _, value := range slices.Sorted(maps.Keys(sources)) {
		list = append(list, statsSource[S]{labelValues: []string{value}, stats: sources[value]})
	}
	return newCollector([]string{label}, list, ss)
}

func newCollector[S any](labels []string, sources []statsSource[S], ss []series[S]) *statsCollector[S] {
	c := &statsCollector[S]{series: ss, sources: sources}
	for _, s := range ss {
		c.descs = append(c.descs, prometheus.NewDesc(s.name, s.help, labels, nil))
	}
	return c
}

func (c *statsCollector[S]) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c *statsCollector[S]) Collect(ch chan<- prometheus.Metric) {
	for _, src := range c.sources {
		st := src.stats()
		for i, s := range c.series {
			ch <- prometheus.MustNewConstMetric(c.descs[i], s.kind, s.value(st), src.labelValues...)
		}
	}
}
