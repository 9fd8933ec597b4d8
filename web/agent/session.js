// The live view of one session: rrweb's Replayer in live mode, fed by the
// agent WebSocket /api/sessions/{id}/live (docs/protocol.md), through
// cobrowsePlayer (player.js).
'use strict';
(function () {
  var sessionId = decodeURIComponent(location.pathname.split('/').pop());
  var viewport = document.getElementById('viewport');
  var stage = document.getElementById('stage');
  var waiting = document.getElementById('waiting');
  var statusEl = document.getElementById('status');
  var titleEl = document.getElementById('page-title');
  var urlEl = document.getElementById('page-url');
  var pageSize = null;
  var player = cobrowsePlayer(stage, function (size) { pageSize = size; fit(); });
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
    waiting.hidden = player.reset(msg.events || []);
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
        player.add(msg.events);
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
