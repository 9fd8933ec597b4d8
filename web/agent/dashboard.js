// Live list of sessions, fed by the server-sent events of /api/sessions/stream.
'use strict';
(function () {
  var body = document.getElementById('sessions');
  var empty = document.getElementById('empty');
  var count = document.getElementById('session-count');
  var liveState = document.getElementById('live-state');
  var sessions = [];

  function render() {
    body.textContent = '';
    sessions.forEach(function (s) {
      var row = document.createElement('tr');
      row.dataset.session = s.id;
      var id = cobrowse.el('td', s.id.slice(0, 8), 'mono');
      id.title = s.id;
      row.appendChild(id);
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
      row.appendChild(status);
      var open = cobrowse.el('td');
      var link = cobrowse.el('a', 'Open', 'button');
      link.href = '/sessions/' + encodeURIComponent(s.id);
      open.appendChild(link);
      row.appendChild(open);
      body.appendChild(row);
    });
    count.textContent = sessions.length;
    empty.hidden = sessions.length > 0;
  }

  // A support code the visitor read out (--join code) opens that session.
  var joinForm = document.getElementById('join-code');
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
