// The agent's side of working together with the visitor (docs/protocol.md,
// "Agent → server"): the name the visitor is shown, where the visitor's
// consent stands (and asking again), the agent's pointer on the visitor's
// page, the chat, and ending the session.
//
// cobrowseCollab(opts) wires the page's controls; opts.send(msg) sends a
// message on the live socket, opts.toVisitor(clientX, clientY) maps a point
// of this page to the visitor's viewport (or returns null when the point is
// not over the view). session.js calls the returned object's info(), reset()
// and chat() with what the live socket brings.
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
  var view = document.getElementById('viewport');
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
    if (consent === 'pending' || consent === 'not asked') {
      consentNote.textContent = 'Waiting for the visitor to accept…';
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
    info: function (info) {
      if (info) showConsent(info.consent);
      if (info && info.ended) endButton.disabled = chatInput.disabled = true;
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
