package metrics

import (
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cobrowse/cobrowse/assets"
	"github.com/cobrowse/cobrowse/browserpool"
	"github.com/cobrowse/cobrowse/natsbus"
	"github.com/cobrowse/cobrowse/proxy"
	"github.com/cobrowse/cobrowse/session"
)

type hubStats session.Stats

func (s hubStats) Stats() session.Stats { return session.Stats(s) }

type poolStats browserpool.Stats

func (s poolStats) Stats() browserpool.Stats { return browserpool.Stats(s) }

type renderStats browserpool.RenderStats

func (s renderStats) Stats() browserpool.RenderStats { return browserpool.RenderStats(s) }

type cacheStats assets.CacheStats

func (s cacheStats) Stats() assets.CacheStats { return assets.CacheStats(s) }

type clusterStats natsbus.Stats

func (s clusterStats) Stats() natsbus.Stats { return natsbus.Stats(s) }

func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler(slog.New(slog.NewTextHandler(io.Discard, nil))).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("GET /metrics = %d: %s", rec.Code, rec.Body)
	}
	return rec.Body.String()
}

func TestSeries(t *testing.T) {
	m := New()
	m.AddHub(hubStats{Sessions: 3, Tabs: 4, Visitors: 2, Agents: 5, Batches: 7, Events: 70, AgentMessages: 90, Resyncs: 1})
	m.AddPool(poolStats{Leases: 6, Waits: 2, Rejections: 1, Timeouts: 1, TabsLost: 1, BrowsersStarted: 2, BrowsersLost: 1, BrowsersRecycled: 1, Browsers: 1, Busy: 3, Waiting: 2})
	m.AddRenderer(renderStats{Sessions: 2, Started: 4, Frames: 600})
	m.AddAssetCache(cacheStats{Hits: 10, Misses: 3, Bytes: 4096, Entries: 2, URLs: 5, Evictions: 1})
	m.AddCluster(clusterStats{RemoteSessions: 8, Relays: 2, Feeds: 3, Takeovers: 4, Releases: 1, StoreFailures: 0})
	m.AddProxy(map[string]func() proxy.Stats{
		"*": func() proxy.Stats {
			return proxy.Stats{Requests: 120, UpstreamErrors: 2, Pages: 30, PagesWithoutSnippet: 1, ResponsesCut: 3}
		},
		"shop.example.com": func() proxy.Stats { return proxy.Stats{Requests: 7, Pages: 4} },
	})
	m.ObserveFanout(3 * time.Millisecond)
	m.ObserveFanout(40 * time.Millisecond)
	m.CountRedactions(map[string]int{"mask .secret": 2, "mask: node under an unknown parent": 1, "remove #ssn": 1,
		"detector email": 3, "inputs: sensitive field": 1, "block_page": 1, "dropped: event of type 77": 1, "something new": 1, "zero": 0})

	out := scrape(t, m)
	for _, want := range []string{
		"cobrowse_sessions 3\n", "cobrowse_visitor_tabs 4\n", "cobrowse_visitor_connections 2\n", "cobrowse_agents 5\n",
		"cobrowse_visitor_batches_total 7\n", "cobrowse_visitor_events_total 70\n",
		"cobrowse_agent_messages_total 90\n", "cobrowse_agent_resyncs_total 1\n",
		"cobrowse_render_leases_total 6\n", "cobrowse_render_lease_waits_total 2\n", "cobrowse_render_lease_rejections_total 1\n",
		"cobrowse_render_lease_timeouts_total 1\n", "cobrowse_render_tabs_lost_total 1\n", "cobrowse_render_browsers_started_total 2\n",
		"cobrowse_render_browsers_lost_total 1\n", "cobrowse_render_browsers_recycled_total 1\n",
		"cobrowse_render_browsers 1\n", "cobrowse_render_tabs_busy 3\n", "cobrowse_render_queue 2\n",
		"cobrowse_rendered_sessions 2\n", "cobrowse_renderings_started_total 4\n", "cobrowse_screencast_frames_total 600\n",
		"cobrowse_asset_cache_hits_total 10\n", "cobrowse_asset_cache_misses_total 3\n", "cobrowse_asset_cache_evictions_total 1\n",
		"cobrowse_asset_cache_bytes 4096\n", "cobrowse_asset_cache_entries 2\n", "cobrowse_asset_cache_urls 5\n",
		"cobrowse_cluster_remote_sessions 8\n", "cobrowse_cluster_relays 2\n", "cobrowse_cluster_feeds 3\n",
		"cobrowse_cluster_takeovers_total 4\n", "cobrowse_cluster_releases_total 1\n", "cobrowse_cluster_store_failures_total 0\n",
		`cobrowse_proxy_requests_total{site="*"} 120` + "\n", `cobrowse_proxy_upstream_errors_total{site="*"} 2` + "\n",
		`cobrowse_proxy_pages_total{site="*"} 30` + "\n", `cobrowse_proxy_pages_without_snippet_total{site="*"} 1` + "\n",
		`cobrowse_proxy_responses_cut_total{site="*"} 3` + "\n",
		`cobrowse_proxy_requests_total{site="shop.example.com"} 7` + "\n", `cobrowse_proxy_pages_total{site="shop.example.com"} 4` + "\n",
		`cobrowse_proxy_responses_cut_total{site="shop.example.com"} 0` + "\n",
		`cobrowse_fanout_latency_seconds_bucket{le="0.005"} 1` + "\n", `cobrowse_fanout_latency_seconds_bucket{le="0.05"} 2` + "\n",
		"cobrowse_fanout_latency_seconds_count 2\n",
		`cobrowse_redactions_total{cause="mask"} 3` + "\n", `cobrowse_redactions_total{cause="remove"} 1` + "\n",
		`cobrowse_redactions_total{cause="detector email"} 3` + "\n", `cobrowse_redactions_total{cause="inputs"} 1` + "\n",
		`cobrowse_redactions_total{cause="block_page"} 1` + "\n", `cobrowse_redactions_total{cause="dropped"} 1` + "\n",
		`cobrowse_redactions_total{cause="other"} 1` + "\n",
		"go_goroutines ", "process_resident_memory_bytes ", "process_cpu_seconds_total ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the scrape lacks %q", strings.TrimSpace(want))
		}
	}
	if t.Failed() {
		t.Logf("scrape:\n%s", out)
	}
}

// Without --render the server adds neither the pool nor the renderer: their
// series are absent rather than zero.
func TestOnlyWhatRuns(t *testing.T) {
	m := New()
	m.AddHub(hubStats{})
	out := scrape(t, m)
	if !strings.Contains(out, "cobrowse_sessions 0\n") {
		t.Errorf("the scrape lacks cobrowse_sessions:\n%s", out)
	}
	for _, absent := range []string{"cobrowse_render_", "cobrowse_screencast_", "cobrowse_asset_cache_"} {
		if strings.Contains(out, absent) {
			t.Errorf("the scrape has %s series for parts that do not run", absent)
		}
	}
}
