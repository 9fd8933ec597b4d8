// The live view of one session, in one of two modes (docs/protocol.md):
// - DOM mode: rrweb's Replayer in live mode (cobrowsePlayer, player.js), fed
//   by the agent WebSocket /api/sessions/{id}/live;
// - Rendered mode: JPEG frames of the server's headless render of the same
//   stream, from /api/sessions/{id}/render.
// The live socket stays open in both modes: it carries the page's title,
// URL and presence, keeps DOM mode ready for a switch back, and carries the
// agent's pointer and chat (collab.js).
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
  // The replayed page loads its images, fonts, stylesheets and media through
  // the asset route: the server fetches them as the visitor would, and this
  // browser never contacts the visitor's site (the console's CSP would not
  // let it).
  var player = cobrowsePlayer(stage, function (size) { pageSize = size; fit(); }, {
    assetURL: function (u) {
      return location.origin + '/api/sessions/' + encodeURIComponent(sessionId) + '/asset?url=' + encodeURIComponent(u);
    }
  });
  var ended = false;
  var retryMs = 500;
  var rendered = document.getElementById('rendered');
  var modeNote = document.getElementById('mode-note');
  var modeButtons = { dom: document.getElementById('mode-dom'), rendered: document.getElementById('mode-rendered') };
  var mode = 'dom';
  var render = { ws: null, state: null, reason: '', frameURL: null, retryMs: 500 };
  var live = null; // the live socket, while open
  var collab = cobrowseCollab({
    send: function (msg) {
      if (live && live.readyState === WebSocket.OPEN) live.send(JSON.stringify(msg));
    },
    // toVisitor maps a point of this page onto the visitor's viewport,
    // through whichever view is on screen (both show the whole viewport).
    toVisitor: function (x, y) {
      var shown = rendered.hidden ? stage : rendered;
      var box = shown.getBoundingClientRect();
      if (!pageSize || !box.width || x < box.left || y < box.top || x > box.right || y > box.bottom) return null;
      var scale = box.width / pageSize.width;
      return { x: (x - box.left) / scale, y: (y - box.top) / scale };
    },
    // elementAt returns the replayed element at a point of the visitor's
    // viewport, in DOM mode (the replay's document is the visitor's
    // viewport at 1:1).
    elementAt: function (x, y) {
      var frame = stage.querySelector('iframe');
      if (stage.hidden || !frame || !frame.contentDocument) return null;
      return frame.contentDocument.elementFromPoint(x, y);
    },
    // A new name: join again under it (the visitor's banner follows).
    onNameChange: function () { if (live) live.close(); }
  });

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
    collab.reset(msg);
    waiting.hidden = player.reset(msg.events || []);
  }

  function connect() {
    var proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    var ws = new WebSocket(proto + '//' + location.host + '/api/sessions/' + encodeURIComponent(sessionId) +
      '/live?name=' + encodeURIComponent(collab.name()));
    live = ws;
    ws.onopen = function () { retryMs = 500; };
    ws.onmessage = function (e) {
      var msg = JSON.parse(e.data);
      if (msg.type === 'reset') {
        reset(msg);
      } else if (msg.type === 'events') {
        player.add(msg.events);
      } else if (msg.type === 'info') {
        showInfo(msg.session);
        collab.info(msg.session);
      } else if (msg.type === 'chat') {
        collab.chat(msg.message);
      } else if (msg.type === 'hello') {
        collab.hello(msg.agent);
      } else if (msg.type === 'refused') {
        collab.refused(msg);
      }
    };
    ws.onclose = function (e) {
      if (live === ws) live = null;
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

  // Rendered mode shows frames once there are some; until then, and while
  // the renderer cannot give any, the DOM view stays on screen and the note
  // says why.
  function showMode() {
    Object.keys(modeButtons).forEach(function (m) { modeButtons[m].setAttribute('aria-pressed', String(m === mode)); });
    var frames = mode === 'rendered' && render.frameURL && (render.state === 'live' || render.state === 'recovering');
    rendered.hidden = !frames;
    stage.hidden = !!frames;
    var note = '';
    if (mode === 'rendered') {
      switch (render.state) {
        case 'live': note = ''; break;
        case 'recovering': note = 'Rendered mode: ' + render.reason; break;
        case 'unavailable': note = 'Rendered mode is unavailable: ' + render.reason + '. Showing DOM mode.'; break;
        case 'ended': note = 'Rendered mode: the session ended.'; break;
        default: note = 'Rendered mode: starting the server-side view… (showing DOM mode meanwhile)';
      }
    }
    modeNote.textContent = note;
  }

  function showFrame(blob) {
    var old = render.frameURL;
    render.frameURL = URL.createObjectURL(blob);
    rendered.src = render.frameURL;
    if (old) URL.revokeObjectURL(old);
    if (rendered.hidden) showMode();
  }

  function openRender() {
    var proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    var ws = new WebSocket(proto + '//' + location.host + '/api/sessions/' + encodeURIComponent(sessionId) + '/render');
    ws.binaryType = 'blob';
    render.ws = ws;
    ws.onopen = function () { render.retryMs = 500; };
    ws.onmessage = function (e) {
      if (typeof e.data !== 'string') {
        showFrame(e.data);
        return;
      }
      var msg = JSON.parse(e.data);
      if (msg.type === 'render') {
        render.state = msg.state;
        render.reason = msg.reason || '';
        showMode();
      }
    };
    ws.onclose = function (e) {
      if (render.ws !== ws) return; // closed by a switch to DOM mode
      render.ws = null;
      // A normal close comes after a status that says why (no renderer,
      // session over): nothing to retry.
      if (mode !== 'rendered' || ended || e.code === 1000 || e.code === 4404) return;
      setTimeout(function () { if (mode === 'rendered' && !render.ws) openRender(); }, render.retryMs);
      render.retryMs = Math.min(render.retryMs * 2, 10000);
    };
  }

  function setMode(m) {
    if (m === mode) return;
    mode = m;
    if (mode === 'rendered') {
      openRender();
    } else {
      var ws = render.ws;
      render.ws = null;
      if (ws) ws.close();
      if (render.frameURL) URL.revokeObjectURL(render.frameURL);
      render.frameURL = null;
      render.state = null;
    }
    showMode();
  }

  modeButtons.dom.addEventListener('click', function () { setMode('dom'); });
  modeButtons.rendered.addEventListener('click', function () { setMode('rendered'); });
  window.addEventListener('resize', fit);
  connect();
})();
