// The agent's side of working together with the visitor (docs/protocol.md,
// "Agent → server"): the name the visitor is shown, where the visitor's
// consent stands (and asking again), the agent's pointer on the visitor's
// page, remote control (asking for it; then clicks, typing, keys, scrolling
// and choosing in lists on the visitor's page), the chat, and ending the
// session.
//
// cobrowseCollab(opts) wires the page's controls; opts.send(msg) sends a
// message on the live socket, opts.toVisitor(clientX, clientY) maps a point
// of this page to the visitor's viewport (or returns null when the point is
// not over the view), opts.elementAt(x, y) returns the replayed element at a
// point of the visitor's viewport (DOM mode; null otherwise). session.js
// calls the returned object's hello(), info(), reset(), chat() and refused()
// with what the live socket brings.
'use strict';
window.cobrowseCollab = function (opts) {
  var NAME_KEY = 'cobrowse.agentName';
  var POINTER_EVERY_MS = 33; // at most ~30 pointer messages a second
  var nameInput = document.getElementById('agent-name');
  var consentNote = document.getElementById('consent-note');
  var chatList = document.getElementById('chat-list');
  var chatForm = document.getElementById('chat-form');
  var chatInput = document.getElementById('chat-input');
  var endButton = document.getElementById('end-session');
  var controlButton = document.getElementById('control');
  var tabSelect = document.getElementById('tab-select');
  var refusedNote = document.getElementById('refused-note');
  var view = document.getElementById('viewport');
  var me = null;        // this agent, as the hub named it (hello)
  var control = null;   // the session's Info.control
  var inputSeq = 0;
  var refusedTimer = 0;
  var lastPointer = 0;
  var consent = '';

  function storedName() {
    try { return localStorage.getItem(NAME_KEY) || ''; } catch (e) { return ''; }
  }
  nameInput.value = storedName();
  nameInput.addEventListener('change', function () {
    try { localStorage.setItem(NAME_KEY, nameInput.value.trim()); } catch (e) { /* private mode */ }
    if (opts.onNameChange) opts.onNameChange();
  });

  function showConsent(state) {
    consent = state || '';
    consentNote.textContent = '';
    consentNote.hidden = !(consent === 'pending' || consent === 'declined' || consent === 'not asked');
    if (consent === 'pending') {
      consentNote.textContent = 'Waiting for the visitor to accept…';
    } else if (consent === 'not asked') {
      consentNote.textContent = 'Not visible yet: the visitor has not accepted, nor given a support code for this session.';
    } else if (consent === 'declined') {
      consentNote.appendChild(document.createTextNode('The visitor declined. '));
      var again = document.createElement('button');
      again.type = 'button';
      again.className = 'link';
      again.textContent = 'Ask again';
      again.addEventListener('click', function () { opts.send({ type: 'ask' }); });
      consentNote.appendChild(again);
    }
    chatInput.disabled = !visible();
  }

  // visible: agents may see (and talk to) the visitor.
  function visible() {
    return consent === '' || consent === 'granted';
  }

  function addChat(m) {
    var li = document.createElement('li');
    var who = document.createElement('b');
    var from = m.from && m.from.id ? m.from : null;
    who.textContent = from ? from.name : 'Visitor';
    if (from) who.style.color = from.color;
    li.appendChild(who);
    li.appendChild(document.createTextNode(' ' + m.text));
    chatList.appendChild(li);
    chatList.scrollTop = chatList.scrollHeight;
  }

  chatForm.addEventListener('submit', function (e) {
    e.preventDefault();
    var text = chatInput.value.trim();
    if (!text) return;
    opts.send({ type: 'chat', text: text });
    chatInput.value = '';
  });

  endButton.addEventListener('click', function () { opts.send({ type: 'end' }); });

  // The visitor's tabs: the view follows the one the visitor is on, unless
  // the agent picks another (only shown when there are several).
  tabSelect.addEventListener('change', function () { opts.send({ type: 'follow', tab: tabSelect.value }); });
  function showTabs(list) {
    list = list || [];
    tabSelect.hidden = list.length < 2;
    var chosen = tabSelect.value;
    tabSelect.textContent = '';
    var follow = document.createElement('option');
    follow.value = '';
    follow.textContent = 'The visitor\'s tab';
    tabSelect.appendChild(follow);
    list.forEach(function (t, i) {
      var o = document.createElement('option');
      o.value = t.id;
      o.textContent = 'Tab ' + (i + 1) + ': ' + (t.title || t.url || 'untitled') + (t.active ? ' (visitor is here)' : '');
      tabSelect.appendChild(o);
    });
    tabSelect.value = list.some(function (t) { return t.id === chosen; }) ? chosen : '';
  }

  // inControl: the visitor let this agent control the page.
  function inControl() {
    return !!(me && control && control.state === 'granted' && control.agent.id === me.id);
  }

  function showControl() {
    var mine = control && me && control.agent.id === me.id;
    controlButton.disabled = !visible() || !!(control && !mine);
    if (inControl()) {
      controlButton.textContent = 'Release control';
    } else if (mine && control.state === 'requested') {
      controlButton.textContent = 'Waiting for the visitor…';
      controlButton.disabled = true;
    } else if (control) {
      controlButton.textContent = control.agent.name + (control.state === 'granted' ? ' has control' : ' asked for control');
    } else {
      controlButton.textContent = 'Request control';
    }
    document.body.classList.toggle('controlling', inControl());
  }

  controlButton.addEventListener('click', function () {
    opts.send({ type: inControl() ? 'control.release' : 'control.request' });
  });

  function input(action, fields) {
    var msg = { type: 'input', action: action, seq: ++inputSeq };
    for (var k in fields) msg[k] = fields[k];
    opts.send(msg);
  }

  // chooseFrom shows the options of a replayed <select> under the agent's
  // click and sends the one picked (a select's own list cannot be opened
  // from here).
  function chooseFrom(select, p, clientX, clientY) {
    var menu = document.createElement('ul');
    menu.className = 'choose';
    menu.setAttribute('role', 'listbox');
    menu.style.left = clientX + 'px';
    menu.style.top = clientY + 'px';
    Array.prototype.forEach.call(select.options, function (o) {
      var li = document.createElement('li');
      li.setAttribute('role', 'option');
      li.tabIndex = 0;
      li.textContent = o.text;
      li.addEventListener('click', function (e) {
        e.stopPropagation();
        menu.remove();
        input('select', { x: p.x, y: p.y, value: o.value });
      });
      menu.appendChild(li);
    });
    document.body.appendChild(menu);
    setTimeout(function () {
      document.addEventListener('click', function close() { menu.remove(); document.removeEventListener('click', close); });
    }, 0);
  }

  // Tools, when not in control: the pointer always shows; Highlight
  // outlines what the agent clicks; Draw draws freehand lines that fade.
  var tool = 'point';
  var toolButtons = document.querySelectorAll('[data-tool]');
  Array.prototype.forEach.call(toolButtons, function (b) {
    b.addEventListener('click', function () {
      tool = b.getAttribute('data-tool');
      Array.prototype.forEach.call(toolButtons, function (o) { o.setAttribute('aria-pressed', String(o === b)); });
      document.body.setAttribute('data-tool', tool);
    });
  });

  var stroke = 0, drawing = false, inkBuffer = [], inkTimer = 0;
  function flushInk() {
    inkTimer = 0;
    if (!inkBuffer.length) return;
    opts.send({ type: 'draw', stroke: stroke, points: inkBuffer });
    inkBuffer = [];
  }
  function inkAt(e) {
    var p = opts.toVisitor(e.clientX, e.clientY);
    if (!p) return;
    inkBuffer.push([Math.round(p.x), Math.round(p.y)]);
    if (inkBuffer.length >= 200) flushInk();
    else if (!inkTimer) inkTimer = setTimeout(flushInk, 40);
  }
  view.addEventListener('mousedown', function (e) {
    if (inControl() || tool !== 'draw' || !visible()) return;
    e.preventDefault();
    drawing = true;
    stroke++;
    inkAt(e);
  });
  view.addEventListener('mousemove', function (e) { if (drawing) inkAt(e); });
  document.addEventListener('mouseup', function () {
    if (!drawing) return;
    drawing = false;
    flushInk();
  });

  // pickValue shows a field of the same type as a replayed date, time or
  // colour field under the agent's click, and sends the value chosen in it:
  // the visitor's own pop-up picker cannot be opened from here.
  var PICKERS = /^(date|datetime-local|month|week|time|color|range)$/i;
  function pickValue(field, p, clientX, clientY) {
    var form = document.createElement('form');
    form.className = 'choose';
    form.style.left = clientX + 'px';
    form.style.top = clientY + 'px';
    var value = document.createElement('input');
    value.type = field.type;
    value.value = field.value;
    value.setAttribute('aria-label', 'Value for the visitor\'s field');
    var ok = document.createElement('button');
    ok.type = 'submit';
    ok.textContent = 'Set';
    form.addEventListener('submit', function (e) {
      e.preventDefault();
      form.remove();
      input('select', { x: p.x, y: p.y, value: value.value });
    });
    form.addEventListener('click', function (e) { e.stopPropagation(); });
    form.appendChild(value);
    form.appendChild(ok);
    document.body.appendChild(form);
    value.focus();
    setTimeout(function () {
      document.addEventListener('click', function close() { form.remove(); document.removeEventListener('click', close); });
    }, 0);
  }

  view.addEventListener('click', function (e) {
    if (!inControl()) {
      var at = tool === 'highlight' && visible() ? opts.toVisitor(e.clientX, e.clientY) : null;
      if (at) opts.send({ type: 'highlight', x: Math.round(at.x), y: Math.round(at.y) });
      return;
    }
    var p = opts.toVisitor(e.clientX, e.clientY);
    if (!p) return;
    var el = opts.elementAt ? opts.elementAt(p.x, p.y) : null;
    if (el && el.tagName === 'SELECT') {
      chooseFrom(el, p, e.clientX, e.clientY);
      return;
    }
    if (el && el.tagName === 'INPUT' && PICKERS.test(el.type || '')) {
      pickValue(el, p, e.clientX, e.clientY);
      return;
    }
    input('click', { x: p.x, y: p.y });
  });

  view.addEventListener('wheel', function (e) {
    if (!inControl()) return;
    e.preventDefault();
    var p = opts.toVisitor(e.clientX, e.clientY) || { x: 0, y: 0 };
    input('scroll', { x: p.x, y: p.y, dx: e.deltaX, dy: e.deltaY });
  }, { passive: false });

  // Keys typed while in control go to the visitor's focused element, unless
  // this console's own fields have the focus.
  var KEYS = { Backspace: 1, Enter: 1, Tab: 1, ArrowUp: 1, ArrowDown: 1, ArrowLeft: 1, ArrowRight: 1, Delete: 1, Home: 1, End: 1 };
  document.addEventListener('keydown', function (e) {
    if (!inControl() || e.ctrlKey || e.metaKey || e.altKey) return;
    var t = e.target;
    if (t && (t.tagName === 'INPUT' || t.tagName === 'TEXTAREA' || t.isContentEditable)) return;
    if (e.key.length === 1) {
      input('text', { text: e.key });
    } else if (KEYS[e.key]) {
      input('key', { key: e.key });
    } else {
      return;
    }
    e.preventDefault();
  });

  // The pointer goes out at most every POINTER_EVERY_MS, and the last
  // position of a movement always goes out (a trailing send), so the
  // visitor sees where the agent's mouse came to rest.
  var pendingPointer = null, pointerTimer = 0;
  function sendPointer() {
    pointerTimer = 0;
    if (!pendingPointer) return;
    lastPointer = performance.now();
    opts.send({ type: 'pointer', x: Math.round(pendingPointer.x), y: Math.round(pendingPointer.y) });
    pendingPointer = null;
  }
  view.addEventListener('mousemove', function (e) {
    if (!visible()) return;
    var p = opts.toVisitor(e.clientX, e.clientY);
    if (!p) return;
    pendingPointer = p;
    if (pointerTimer) return;
    // performance.now, not e.timeStamp: synthetic events may carry none.
    var wait = POINTER_EVERY_MS - (performance.now() - lastPointer);
    if (wait <= 0) sendPointer();
    else pointerTimer = setTimeout(sendPointer, wait);
  });

  return {
    name: function () { return nameInput.value.trim() || storedName(); },
    hello: function (agent) {
      me = agent;
      showControl();
    },
    info: function (info) {
      if (info) {
        showTabs(info.tabList);
        showConsent(info.consent);
        control = info.control || null;
        showControl();
      }
      if (info && info.ended) endButton.disabled = chatInput.disabled = controlButton.disabled = true;
    },
    // refused shows, for a while, why the visitor's page did not take an
    // input action (a masked field, a no_control element).
    refused: function (msg) {
      refusedNote.textContent = 'Not done on the visitor\'s page: ' + msg.reason;
      refusedNote.hidden = false;
      clearTimeout(refusedTimer);
      refusedTimer = setTimeout(function () { refusedNote.hidden = true; }, 5000);
    },
    // reset starts from the session's state: its consent and chat so far.
    reset: function (msg) {
      chatList.textContent = '';
      (msg.chat || []).forEach(addChat);
      this.info(msg.session);
    },
    chat: addChat
  };
};
