// cobrowse visitor script.
//
// Records the page with rrweb and streams the events to the session hub over
// one WebSocket per tab (docs/protocol.md). It is served as
// /__cobrowse/visitor.js, wrapped by the Go server together with the rrweb
// record bundle, which is passed in as `record`. Nothing is left on `window`
// but one flag that stops a second copy from running, and window.cobrowse
// (showCode(), for --join code).
//
// Delivery: events are grouped into batches {seq, events}; every batch stays
// in `unacked` until the server acknowledges its seq, and is resent after a
// reconnect (the server drops what it already holds). If the server has lost
// the page (it restarted) or the buffer grows past its bound while offline,
// the script starts a new page load with a fresh full snapshot instead.
//
// Masking: before recording starts, the script fetches the client part of
// the server's redaction policy for this page (/__cobrowse/policy, see
// docs/policies.md) and records with it: text under its mask selectors and
// the values of the fields it lists are replaced by asterisks, and its
// remove selectors are recorded as empty boxes, before any event exists.
// Passwords and payment-card fields are masked whatever the policy says.
// The server enforces the policy again on everything it receives, so a
// policy that cannot be fetched (the script then records with its built-in
// masking only) never shows an agent more.
(function (record) {
  'use strict';
  if (window.__cobrowseVisitor) return;
  window.__cobrowseVisitor = true;
  // The page's one API (docs/protocol.md): with --join code, a site can
  // offer its own "get help" button that shows the visitor a support code.
  window.cobrowse = { showCode: function () { send({ type: 'code.request' }); } };

  var WS_PATH = '/__cobrowse/ws';
  var FLUSH_MS = 40;                     // batch window
  var MAX_BATCH_EVENTS = 500;            // a batch is sent early past this
  // Bounds in JS string length (UTF-16 code units; at most 3 UTF-8 bytes
  // each). One batch stays under the server's 32 MiB message bound; a larger
  // one (a page too big to snapshot) stops recording instead of retrying.
  var MAX_BATCH_CHARS = 8 * 1024 * 1024;
  var MAX_UNACKED_CHARS = 32 * 1024 * 1024;
  var ID = /^[A-Za-z0-9_-]{8,64}$/; // docs/protocol.md
  var MIN_BACKOFF_MS = 250, MAX_BACKOFF_MS = 10000;
  var POLICY_PATH = '/__cobrowse/policy';
  var POLICY_TIMEOUT_MS = 3000;          // then record with the built-in masking
  // A card's expiry as a <select> cannot be masked without breaking every
  // other select's replay (rrweb masks selects only all together), so it is
  // blocked: agents see a placeholder of its size.
  var BUILTIN_BLOCK = 'select[autocomplete*="cc-"]';

  function randomId() {
    var bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    var s = '';
    for (var i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
    return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  }

  // The tab id survives navigations within the tab (sessionStorage is per
  // tab); the page id is new for every page load.
  var tabId;
  try {
    tabId = sessionStorage.getItem('__cobrowse_tab');
    if (!tabId || !ID.test(tabId)) {
      tabId = randomId();
      sessionStorage.setItem('__cobrowse_tab', tabId);
    }
  } catch (e) {
    tabId = randomId(); // storage disabled: every page is its own tab
  }

  var pageId, seq, lastAcked, unackedBytes, stopRecording;
  var pending = [], unacked = [];
  var policy = null; // the page's masking options (see loadPolicy), once known
  var ws = null, connected = false, backoff = MIN_BACKOFF_MS, flushTimer = 0, reconnectTimer = 0;
  var ended = false; // the session ended (docs/protocol.md "ended"): this page stops
  var sessionId = ''; // the session of the last welcome
  // What the visitor sees of the session: consent, banner, agents' pointers
  // (ui.js, in the same scope).
  var ui = cobrowseUI(document, window, send);
  // Remote control (control.js): applies the agent's input while the
  // visitor lets an agent control the page.
  var applyInput = cobrowseControl(document, window, controlRefusal);
  var controller = ''; // the id of the agent in control, or ''

  // Fields whose value must never be sent, whatever else is masked.
  function sensitive(el) {
    if (!el) return true; // rrweb gave no element: fail closed
    var type = (el.getAttribute && el.getAttribute('type') || '').toLowerCase();
    var ac = (el.getAttribute && el.getAttribute('autocomplete') || '').toLowerCase();
    // rrweb marks a password field that the page switched to another type
    // ("show password") with data-rr-is-password; it is still a password.
    var wasPassword = el.getAttribute && el.getAttribute('data-rr-is-password') != null;
    return type === 'password' || wasPassword || /(^|\s)cc-/.test(ac) ||
      /(^|\s)(current-password|new-password|one-time-code)(\s|$)/.test(ac);
  }

  // loadPolicy fetches the page's masking options and calls done with them:
  // {maskTextSelector, blockSelector, maskInputSelector, maskAllInputs,
  // blockPage} (policies.ClientConfig), or {} if they cannot be had within
  // POLICY_TIMEOUT_MS. done is called once.
  function loadPolicy(done) {
    var finished = false, timer = 0;
    function finish(p) {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      done(checkedPolicy(p));
    }
    function fail(why) {
      console.warn('cobrowse: masking policy unavailable (' + why + '); recording with the built-in masking');
      finish({});
    }
    timer = setTimeout(function () { fail('no answer in ' + POLICY_TIMEOUT_MS + ' ms'); }, POLICY_TIMEOUT_MS);
    try {
      fetch(POLICY_PATH + '?url=' + encodeURIComponent(location.href), { credentials: 'same-origin', cache: 'no-store' })
        .then(function (r) {
          if (!r.ok) throw new Error('HTTP ' + r.status);
          return r.json();
        })
        .then(finish, function (err) { fail(String(err)); });
    } catch (err) {
      fail(String(err)); // no fetch, or the page's CSP refused it
    }
  }

  // checkedPolicy returns the policy with only the selectors this browser
  // understands; a selector it does not understand makes everything it was
  // meant to limit apply to the whole page instead (masking all text, all
  // field values, or blocking the page), rather than masking too little.
  function checkedPolicy(p) {
    p = p && typeof p === 'object' ? p : {};
    function valid(sel) {
      if (typeof sel !== 'string' || !sel) return '';
      try { document.querySelector(sel); return sel; } catch (err) { return null; }
    }
    var out = {
      maskTextSelector: valid(p.maskTextSelector),
      blockSelector: valid(p.blockSelector),
      maskInputSelector: valid(p.maskInputSelector),
      maskAllInputs: p.maskAllInputs === true,
      noControlSelector: valid(p.noControlSelector),
      blockPage: p.blockPage === true
    };
    if (out.maskTextSelector === null) out.maskTextSelector = '*';
    if (out.noControlSelector === null) out.noControlSelector = '*';
    if (out.maskInputSelector === null) { out.maskInputSelector = ''; out.maskAllInputs = true; }
    if (out.blockSelector === null) { out.blockSelector = ''; out.blockPage = true; }
    return out;
  }

  // masked reports whether the value of the field el must be masked.
  function masked(el) {
    if (sensitive(el) || policy.maskAllInputs) return true;
    try {
      return !!(policy.maskInputSelector && el && el.matches && el.matches(policy.maskInputSelector));
    } catch (err) {
      return true;
    }
  }

  // controlRefusal says why an agent may not act on el, or "": the policy's
  // no_control elements, and fields whose value agents may not read.
  function controlRefusal(el) {
    try {
      if (policy.noControlSelector && el.closest(policy.noControlSelector)) {
        return "the site's policy does not let agents use this";
      }
    } catch (err) {
      return "the site's policy could not be checked here";
    }
    if (/^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName) && masked(el)) {
      return 'this field is masked: agents cannot use it';
    }
    return '';
  }

  function startPage() {
    pageId = randomId();
    seq = 0;
    lastAcked = 0;
    pending = [];
    unacked = [];
    unackedBytes = 0;
    if (stopRecording) stopRecording();
    stopRecording = record({
      emit: function (event) {
        pending.push(event);
        if (pending.length >= MAX_BATCH_EVENTS) flush();
        else if (!flushTimer) flushTimer = setTimeout(flush, FLUSH_MS);
      },
      // Every input that holds a typed value goes through maskInputFn, which
      // keeps ordinary values and masks the sensitive ones (rrweb calls
      // maskInputFn only for the types listed here; a card's expiry is often
      // an <input type="month" autocomplete="cc-exp">).
      maskInputOptions: {
        password: true, text: true, email: true, tel: true, number: true,
        search: true, url: true, textarea: true,
        date: true, 'datetime-local': true, month: true, time: true, week: true,
        color: true, range: true
      },
      maskInputFn: function (text, el) {
        return masked(el) ? '*'.repeat(text.length) : text;
      },
      maskTextSelector: policy.maskTextSelector || undefined,
      // A page the policy blocks is recorded as an empty body: agents see
      // the server's placeholder, and nothing of the page leaves it.
      blockSelector: policy.blockPage ? 'body' :
        BUILTIN_BLOCK + (policy.blockSelector ? ',' + policy.blockSelector : ''),
      recordCanvas: false,
      collectFonts: true,
      inlineStylesheet: true,
      sampling: { mousemove: 50, scroll: 100, input: 'last' }
    });
  }

  function flush() {
    clearTimeout(flushTimer);
    flushTimer = 0;
    if (!pending.length) return;
    var data = JSON.stringify({ seq: seq + 1, events: pending });
    pending = [];
    if (data.length > MAX_BATCH_CHARS) {
      // It can never be delivered, and a new snapshot would be as large.
      stopRecording();
      console.warn('cobrowse: this page is too large to share (' + data.length +
        ' characters in one change); co-browsing stops on this page');
      return;
    }
    seq++;
    unacked.push({ seq: seq, data: data });
    unackedBytes += data.length;
    if (unackedBytes > MAX_UNACKED_CHARS) {
      // Offline too long: drop the backlog and start over with a snapshot
      // once the connection is back.
      restart();
      return;
    }
    if (connected) ws.send(data);
  }

  function send(msg) {
    if (connected) ws.send(JSON.stringify(msg));
  }

  var lastPage = '';
  function reportPage() {
    var ratio = window.devicePixelRatio || 1;
    var current = location.href + '\n' + document.title + '\n' + ratio;
    if (current === lastPage || !connected) return;
    lastPage = current;
    send({ type: 'page', url: location.href, title: document.title, pixelRatio: ratio });
  }

  // restart begins a new page load: new id, new snapshot, new connection.
  // The old socket is disowned first: its late acks belong to the old page
  // and must not remove the new page's batches.
  function restart() {
    if (!policy || ended) return; // still loading: the page starts once it is known
    var old = ws;
    ws = null;
    connected = false;
    if (old) old.close();
    startPage();
    connect();
  }

  function connect() {
    clearTimeout(reconnectTimer);
    var proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    var socket;
    try {
      socket = new WebSocket(proto + '//' + location.host + WS_PATH +
        '?tab=' + encodeURIComponent(tabId) + '&page=' + encodeURIComponent(pageId));
    } catch (err) {
      reconnectLater(); // e.g. the page's CSP refused the connection
      return;
    }
    ws = socket;
    socket.onmessage = function (e) {
      if (ws !== socket) return;
      var msg;
      try { msg = JSON.parse(e.data); } catch (err) { return; }
      if (msg.type === 'welcome') {
        // Back after the session ended (offline too long, or the server
        // restarted): what the panel showed belongs to the old one.
        if (sessionId && msg.session !== sessionId) {
          ui.ended();
          controller = '';
        }
        sessionId = msg.session;
        if (msg.ack < lastAcked) { restart(); return; } // the server lost this page
        acknowledge(msg.ack);
        connected = true;
        backoff = MIN_BACKOFF_MS;
        for (var i = 0; i < unacked.length; i++) socket.send(unacked[i].data);
        lastPage = '';
        reportPage();
        if (msg.join === 'code') ui.offerCode();
        if (document.visibilityState === 'visible' && document.hasFocus()) send({ type: 'focus' });
      } else if (msg.type === 'ack') {
        acknowledge(msg.seq);
      } else if (msg.type === 'snapshot') {
        record.takeFullSnapshot(true);
      } else if (msg.type === 'ended') {
        end();
      } else if (msg.type === 'input') {
        // An action that arrives after the visitor took control back (it
        // crossed the Stop on the way) is not applied.
        var why;
        try {
          why = msg.agent && msg.agent === controller ? applyInput(msg) : 'the visitor has taken control back';
        } catch (err) {
          why = 'it could not be done on this page: ' + String(err).slice(0, 120);
        }
        if (why) send({ type: 'input.result', agent: msg.agent, inputSeq: msg.seq, ok: false, text: why });
      } else if (Object.prototype.hasOwnProperty.call(ui, msg.type)) {
        if (msg.type === 'control') controller = (msg.agent && msg.agent.id) || '';
        if (msg.type === 'control.ended') controller = '';
        ui[msg.type](msg);
      }
    };
    socket.onclose = function () {
      if (ws !== socket) return;
      connected = false;
      ws = null;
      reconnectLater();
    };
  }

  // end stops this page for good: the session ended (the visitor pressed
  // End, in this tab or another). The next page load starts a new session,
  // which agents cannot see unless the visitor accepts again.
  function end() {
    ended = true;
    ui.ended();
    if (stopRecording) stopRecording();
    clearTimeout(flushTimer);
    clearTimeout(reconnectTimer);
    var old = ws;
    ws = null;
    connected = false;
    if (old) old.close();
  }

  // reconnectLater schedules the next connection attempt with jittered
  // exponential backoff.
  function reconnectLater() {
    if (ended) return;
    var delay = backoff * (0.5 + Math.random());
    backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
    reconnectTimer = setTimeout(connect, delay);
  }

  function acknowledge(ackSeq) {
    if (ackSeq > lastAcked) lastAcked = ackSeq;
    while (unacked.length && unacked[0].seq <= ackSeq) {
      unackedBytes -= unacked[0].data.length;
      unacked.shift();
    }
  }

  loadPolicy(function (p) {
    policy = p;
    startPage();
    connect();
  });
  setInterval(reportPage, 1000);
  window.addEventListener('focus', function () { send({ type: 'focus' }); });
  document.addEventListener('visibilitychange', function () {
    if (document.visibilityState === 'visible') send({ type: 'focus' });
  });
  window.addEventListener('pagehide', flush);
  // A page restored from the back/forward cache lost its connection and the
  // server has moved on: stream it as a new page load.
  window.addEventListener('pageshow', function (e) { if (e.persisted) restart(); });
})
