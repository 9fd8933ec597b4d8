// Live list of sessions, fed by the server-sent events of /api/sessions/stream.
'use strict';
(function () {
  var body = document.getElementById('sessions');
  var empty = document.getElementById('empty');
  var count = document.getElementById('session-count');
  var liveState = document.getElementById('live-state');
  var search = document.getElementById('search');
  var sessions = [];

  // matches reports whether a session fits the search: its visitor's label
  // (--visitor-label-cookie/-header), page title or URL, or id.
  function matches(s, q) {
    if (!q) return true;
    return [s.label, s.title, s.url, s.id].some(function (f) { return f && f.toLowerCase().indexOf(q) >= 0; });
  }

  function render() {
    body.textContent = '';
    var q = search.value.trim().toLowerCase();
    var shown = sessions.filter(function (s) { return matches(s, q); });
    shown.forEach(function (s) {
      var row = document.createElement('tr');
      row.dataset.session = s.id;
      var id = cobrowse.el('td', s.id.slice(0, 8), 'mono');
      id.title = s.id;
      row.appendChild(id);
      row.appendChild(cobrowse.el('td', s.label || '—', s.label ? 'label' : 'muted'));
      var page = cobrowse.el('td');
      page.appendChild(cobrowse.el('div', s.title || '(untitled)', 'title'));
      page.appendChild(cobrowse.el('div', s.url || '', 'muted url'));
      row.appendChild(page);
      row.appendChild(cobrowse.el('td', cobrowse.relativeTime(s.started)));
      row.appendChild(cobrowse.el('td', cobrowse.relativeTime(s.lastActivity)));
      var state = s.connected ? 'live' : 'away';
      var status = cobrowse.el('td');
      status.appendChild(cobrowse.el('span', state, 'pill ' + state));
      if (s.agents) status.appendChild(cobrowse.el('span', ' ' + s.agents + ' watching', 'muted'));
      // In a cluster (--nats), a session another node holds says which.
      if (s.node) status.appendChild(cobrowse.el('div', 'on node ' + s.node, 'muted'));
      row.appendChild(status);
      var open = cobrowse.el('td');
      var link = cobrowse.el('a', 'Open', 'button');
      link.href = '/sessions/' + encodeURIComponent(s.id);
      open.appendChild(link);
      row.appendChild(open);
      body.appendChild(row);
    });
    count.textContent = sessions.length;
    empty.hidden = shown.length > 0;
    empty.textContent = sessions.length ? 'No visitor matches the search.' :
      'No visitors right now. Sessions appear here as soon as someone opens a page of the fronted site.';
  }
  search.addEventListener('input', render);

  // A support code the visitor read out (--join code) opens that session;
  // the field shows only on a server that gives codes.
  var joinForm = document.getElementById('join-code');
  fetch('/api/server').then(function (r) { return r.json(); }).then(function (server) {
    joinForm.hidden = server.join !== 'code';
  }, function () { /* keep it hidden */ });
  var codeError = document.getElementById('code-error');
  joinForm.addEventListener('submit', function (e) {
    e.preventDefault();
    codeError.textContent = '';
    var code = joinForm.code.value.replace(/\s+/g, '');
    fetch('/api/join', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ code: code }) })
      .then(function (r) { return r.json().then(function (body) { return { ok: r.ok, body: body }; }); })
      .then(function (res) {
        if (res.ok) location.href = '/sessions/' + encodeURIComponent(res.body.id);
        else codeError.textContent = res.body.error || 'That code did not work.';
      }, function () { codeError.textContent = 'The server could not be reached.'; });
  });

  var stream = new EventSource('/api/sessions/stream');
  stream.addEventListener('sessions', function (e) {
    sessions = JSON.parse(e.data);
    render();
  });
  stream.onopen = function () { liveState.textContent = 'live'; };
  stream.onerror = function () { liveState.textContent = 'reconnecting…'; };
  setInterval(render, 1000); // keep the relative times fresh
})();
