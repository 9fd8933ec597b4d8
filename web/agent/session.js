// The live view of one session: rrweb's Replayer in live mode, fed by the
// agent WebSocket /api/sessions/{id}/live (docs/protocol.md).
//
// The Replayer renders the visitor's page in an iframe that it sandboxes
// without allow-scripts, so visitor markup never runs script here.
'use strict';
(function () {
  var sessionId = decodeURIComponent(location.pathname.split('/').pop());
  var viewport = document.getElementById('viewport');
  var stage = document.getElementById('stage');
  var waiting = document.getElementById('waiting');
  var statusEl = document.getElementById('status');
  var titleEl = document.getElementById('page-title');
  var urlEl = document.getElementById('page-url');
  var replayer = null;
  var pageSize = null;
  var lastStamp = 0;
  var ended = false;
  var retryMs = 500;

  function setStatus(text, state) {
    statusEl.textContent = text;
    statusEl.className = 'status ' + (state || '');
  }

  function showInfo(info) {
    if (!info) return;
    titleEl.textContent = info.title || '(untitled)';
    urlEl.textContent = info.url || '';
    document.title = (info.title || 'Session') + ' — cobrowse';
    if (info.ended) {
      ended = true;
      setStatus('session ended', 'ended');
    } else {
      setStatus(info.connected ? 'live' : 'visitor away', info.connected ? 'live' : 'away');
    }
  }

  // rrweb's live mode plays an event once the player's clock (started at
  // startLive) reaches the event's timestamp. Timestamps come from the
  // visitor's clock and an idle visitor leaves old ones, so each batch is
  // moved onto this browser's clock: its last event lands on "now", its
  // internal spacing and the overall order are kept.
  function restamp(events) {
    if (!events.length) return;
    var shift = Date.now() - events[events.length - 1].timestamp;
    events.forEach(function (e) {
      lastStamp = Math.max(e.timestamp + shift, lastStamp);
      e.timestamp = lastStamp;
    });
  }

  function fit() {
    var wrapper = stage.querySelector('.replayer-wrapper');
    if (!wrapper || !pageSize) return;
    var scale = Math.min(viewport.clientWidth / pageSize.width, viewport.clientHeight / pageSize.height, 1);
    wrapper.style.transform = 'scale(' + scale + ')';
    stage.style.width = Math.round(pageSize.width * scale) + 'px';
    stage.style.height = Math.round(pageSize.height * scale) + 'px';
  }

  function reset(msg) {
    showInfo(msg.session);
    if (replayer) replayer.destroy();
    replayer = null;
    stage.textContent = '';
    var events = msg.events || [];
    var hasSnapshot = events.some(function (e) { return e.type === 2; });
    waiting.hidden = hasSnapshot;
    if (!hasSnapshot) return;
    restamp(events);
    replayer = new rrwebReplay.Replayer([], {
      root: stage,
      liveMode: true,
      mouseTail: false,
      triggerFocus: false,
      showWarning: false,
      UNSAFE_replayCanvas: false
    });
    replayer.on('resize', function (size) { pageSize = size; fit(); });
    replayer.startLive(lastStamp);
    events.forEach(function (e) { replayer.addEvent(e); });
  }

  function connect() {
    var proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    var ws = new WebSocket(proto + '//' + location.host + '/api/sessions/' + encodeURIComponent(sessionId) + '/live');
    ws.onopen = function () { retryMs = 500; };
    ws.onmessage = function (e) {
      var msg = JSON.parse(e.data);
      if (msg.type === 'reset') {
        reset(msg);
      } else if (msg.type === 'events') {
        if (!replayer) return;
        restamp(msg.events);
        msg.events.forEach(function (ev) { replayer.addEvent(ev); });
      } else if (msg.type === 'info') {
        showInfo(msg.session);
      }
    };
    ws.onclose = function (e) {
      if (ended) return;
      if (e.code === 4404) {
        setStatus('no such session', 'ended');
        waiting.hidden = true;
        return;
      }
      setStatus('reconnecting…', 'away');
      setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, 10000);
    };
  }

  window.addEventListener('resize', fit);
  connect();
})();
