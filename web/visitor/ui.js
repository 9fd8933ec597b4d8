// cobrowse visitor UI: what the visitor sees of a co-browsing session.
//
// The consent and control questions, the banner that says which agents are
// watching and who is in control (with the buttons that stop control, open
// the chat and end the session), the chat, and what agents show on the page:
// their pointers, highlighted elements and freehand drawing. It lives in a
// closed shadow root on one element, <cobrowse-ui>, so that:
// - the page's styles and scripts cannot reach into it, nor it into the page;
// - rrweb, which cannot see into a closed shadow root, records only the empty
//   host: agents never see the panel (nor what the visitor does in it);
// - a strict page CSP or Trusted Types policy does not stop it: it is built
//   with DOM calls and a constructed style sheet, never markup or inline
//   styles.
//
// cobrowseUI(document, window, send) returns the handlers of the hub's
// messages (docs/protocol.md, "Server → visitor"); send(msg) sends the
// visitor's answers. Nothing is added to the page until a message needs it.
function cobrowseUI(doc, win, send) {
  'use strict';
  var POINTER_IDLE_MS = 4000;
  var CSS =
    ':host { all: initial; }' +
    '.panel { position: fixed; z-index: 2147483647; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;' +
    '  color: #1d2330; background: #fff; border-radius: 10px; box-shadow: 0 6px 24px rgba(0,0,0,.22); pointer-events: auto; }' +
    '.ask { left: 50%; bottom: 24px; transform: translateX(-50%); padding: 16px 18px; max-width: 420px; }' +
    '.ask p { margin: 0 0 12px; } .ask .fine { font-size: 12px; color: #6b7385; }' +
    '.banner { right: 16px; bottom: 16px; padding: 8px 10px 8px 14px; display: flex; align-items: center; gap: 10px; }' +
    '.dot { display: inline-block; width: 10px; height: 10px; border-radius: 50%; margin-right: 4px; vertical-align: -1px; }' +
    'button { font: inherit; border: 0; border-radius: 6px; padding: 6px 14px; cursor: pointer; }' +
    'button:focus-visible { outline: 3px solid #93c5fd; outline-offset: 2px; }' +
    '.yes { background: #4f46e5; color: #fff; margin-right: 8px; } .no, .end { background: #e5e7eb; color: #1d2330; }' +
    '.chat { right: 16px; bottom: 64px; width: 320px; max-height: 50vh; display: flex; flex-direction: column; }' +
    '.chat ol { list-style: none; margin: 0; padding: 10px 12px; overflow-y: auto; flex: 1; }' +
    '.chat li { margin: 0 0 8px; } .chat b { font-weight: 600; margin-right: 6px; }' +
    '.chat form { display: flex; gap: 6px; padding: 8px; border-top: 1px solid #e5e7eb; }' +
    '.chat input { flex: 1; font: inherit; padding: 6px 8px; border: 1px solid #d1d5db; border-radius: 6px; min-width: 0; }' +
    '.open { background: #eef2ff; color: #3730a3; } .send { background: #4f46e5; color: #fff; }' +
    '.highlight { position: fixed; z-index: 2147483646; pointer-events: none; border: 3px solid; border-radius: 6px;' +
    '  box-shadow: 0 0 0 4px rgba(255,255,255,.6); transition: opacity .6s; }' +
    '.ink { position: fixed; inset: 0; z-index: 2147483646; pointer-events: none; }' +
    '.pointer { position: fixed; z-index: 2147483647; pointer-events: none; transition: left .08s linear, top .08s linear; }' +
    '.pointer svg { display: block; } .pointer span { display: inline-block; margin: 2px 0 0 12px; padding: 1px 6px;' +
    '  border-radius: 4px; color: #fff; font: 12px system-ui, sans-serif; white-space: nowrap; }' +
    '[hidden] { display: none !important; }';

  var host = null, root = null;
  var ask = null, askControl = null, banner = null;
  var controller = null; // the agent in control, or null
  var chat = null, chatList = null, unread = 0, chatButton = null;
  var help = null, codePanel = null; // --join code: the help button, the code shown
  var agents = {};   // id → {name, color}
  var pointers = {}; // id → {el, timer}
  var HIGHLIGHT_MS = 5000, INK_FADE_MS = 3000;
  var ink = null, strokes = {}, inkFrame = 0; // agent drawing: "agent stroke" → {color, points, last}

  function el(tag, className, text) {
    var e = doc.createElement(tag);
    if (className) e.className = className;
    if (text) e.textContent = text;
    return e;
  }

  // ensure adds the host and its shadow root to the page, once.
  function ensure() {
    if (root) return root;
    host = doc.createElement('cobrowse-ui');
    root = host.attachShadow({ mode: 'closed' });
    var sheet = new win.CSSStyleSheet();
    sheet.replaceSync(CSS);
    root.adoptedStyleSheets = [sheet];
    // The page never hears of keys typed or clicks made in the panel.
    ['keydown', 'keyup', 'keypress', 'input', 'click', 'mousedown', 'mouseup', 'pointerdown', 'pointerup'].forEach(function (type) {
      root.addEventListener(type, function (e) { e.stopPropagation(); });
    });
    doc.documentElement.appendChild(host);
    return root;
  }

  function names(list) {
    if (list.length <= 1) return list.join('');
    return list.slice(0, -1).join(', ') + ' and ' + list[list.length - 1];
  }

  function closeAsk() {
    if (ask) ask.remove();
    ask = null;
  }

  // question shows a dialog with Allow (focused: Enter accepts) and
  // Decline (Escape too), and calls answer(allow) once.
  function question(label, text, fine, answer) {
    ensure();
    var box = el('div', 'panel ask');
    box.setAttribute('role', 'dialog');
    box.setAttribute('aria-label', label);
    box.appendChild(el('p', '', text));
    box.appendChild(el('p', 'fine', fine));
    var yes = el('button', 'yes', 'Allow');
    var no = el('button', 'no', 'Decline');
    yes.type = no.type = 'button';
    yes.addEventListener('click', function () { answer(true); });
    no.addEventListener('click', function () { answer(false); });
    box.addEventListener('keydown', function (e) { if (e.key === 'Escape') answer(false); });
    box.appendChild(yes);
    box.appendChild(no);
    root.appendChild(box);
    yes.focus();
    return box;
  }

  function closeControlAsk() {
    if (askControl) askControl.remove();
    askControl = null;
  }

  // onEscape takes control back: the visitor's way out that always works.
  function onEscape(e) {
    if (e.key === 'Escape' && controller) send({ type: 'control.revoke' });
  }

  function showBanner() {
    var ids = Object.keys(agents);
    if (!ids.length) {
      if (banner) banner.hidden = true;
      return;
    }
    ensure();
    if (!banner) {
      banner = el('div', 'panel banner');
      banner.setAttribute('role', 'status');
      banner.setAttribute('aria-live', 'polite');
      root.appendChild(banner);
    }
    banner.textContent = '';
    var text = el('span');
    ids.forEach(function (id) {
      var dot = el('span', 'dot');
      dot.style.background = agents[id].color;
      text.appendChild(dot);
    });
    text.appendChild(doc.createTextNode(names(ids.map(function (id) { return agents[id].name; })) +
      (ids.length === 1 ? ' is' : ' are') + ' viewing this page' +
      (controller ? ' · ' + controller.name + ' is in control (Esc to stop)' : '')));
    chatButton = el('button', 'open');
    chatButton.type = 'button';
    chatButton.addEventListener('click', function () { showChat(chat ? chat.hidden : true, true); });
    var end = el('button', 'end', 'End');
    end.type = 'button';
    end.title = 'Stop sharing this page';
    end.addEventListener('click', function () { send({ type: 'end' }); });
    banner.appendChild(text);
    if (controller) {
      var stop = el('button', 'end', 'Stop control');
      stop.type = 'button';
      stop.addEventListener('click', function () { send({ type: 'control.revoke' }); });
      banner.appendChild(stop);
    }
    banner.appendChild(chatButton);
    banner.appendChild(end);
    banner.hidden = false;
    labelChatButton();
  }

  function labelChatButton() {
    if (chatButton) chatButton.textContent = unread ? 'Chat (' + unread + ')' : 'Chat';
  }

  // showChat opens (or closes) the chat panel, building it once. Only the
  // visitor's own click moves the focus into it (focus): an agent's message
  // must not take the keyboard from a form the visitor is filling in.
  function showChat(open, focus) {
    ensure();
    if (!chat) {
      chat = el('div', 'panel chat');
      chat.setAttribute('role', 'log');
      chat.setAttribute('aria-label', 'Chat with support');
      chatList = el('ol');
      var form = el('form');
      var input = el('input');
      input.setAttribute('aria-label', 'Message');
      input.maxLength = 2000;
      var go = el('button', 'send', 'Send');
      go.type = 'submit';
      form.addEventListener('submit', function (e) {
        e.preventDefault();
        var text = input.value.trim();
        if (!text) return;
        send({ type: 'chat', text: text });
        input.value = '';
      });
      form.appendChild(input);
      form.appendChild(go);
      chat.appendChild(chatList);
      chat.appendChild(form);
      root.appendChild(chat);
    }
    chat.hidden = !open;
    if (open) {
      unread = 0;
      labelChatButton();
      if (focus) chat.querySelector('input').focus();
    }
  }

  function addChatLine(m) {
    showChat(chat ? !chat.hidden : false, false);
    var li = el('li');
    var from = m.from && m.from.id ? m.from : null;
    var who = el('b', '', from ? from.name : 'You');
    if (from) who.style.color = from.color;
    li.appendChild(who);
    li.appendChild(doc.createTextNode(m.text));
    chatList.appendChild(li);
    chatList.scrollTop = chatList.scrollHeight;
  }

  // paintInk draws the strokes on the ink layer, and keeps repainting while
  // one is still fading.
  function paintInk() {
    ensure();
    if (!ink) {
      ink = doc.createElement('canvas');
      ink.className = 'ink';
      root.appendChild(ink);
    }
    if (inkFrame) return;
    inkFrame = win.requestAnimationFrame(function frame() {
      inkFrame = 0;
      var ratio = win.devicePixelRatio || 1;
      var w = win.innerWidth, h = win.innerHeight;
      if (ink.width !== Math.round(w * ratio) || ink.height !== Math.round(h * ratio)) {
        ink.width = Math.round(w * ratio);
        ink.height = Math.round(h * ratio);
        ink.style.width = w + 'px';
        ink.style.height = h + 'px';
      }
      var g = ink.getContext('2d');
      g.setTransform(ratio, 0, 0, ratio, 0, 0);
      g.clearRect(0, 0, w, h);
      var now = Date.now(), live = false;
      Object.keys(strokes).forEach(function (key) {
        var s = strokes[key];
        var alpha = 1 - (now - s.last) / INK_FADE_MS;
        if (alpha <= 0) { delete strokes[key]; return; }
        live = true;
        g.globalAlpha = alpha;
        g.strokeStyle = s.color;
        g.lineWidth = 4;
        g.lineCap = g.lineJoin = 'round';
        g.beginPath();
        s.points.forEach(function (p, i) { if (i) g.lineTo(p[0], p[1]); else g.moveTo(p[0], p[1]); });
        g.stroke();
      });
      if (live) inkFrame = win.requestAnimationFrame(frame);
    });
  }

  function closeCode() {
    if (codePanel) codePanel.remove();
    codePanel = null;
  }

  function removePointer(id) {
    var p = pointers[id];
    if (!p) return;
    clearTimeout(p.timer);
    p.el.remove();
    delete pointers[id];
  }

  return {
    // consent asks the visitor whether msg.agent may see the page. Enter
    // (on the focused "Allow") accepts; Escape declines.
    consent: function (msg) {
      closeAsk();
      var who = (msg.agent && msg.agent.name) || 'A support agent';
      ask = question('Screen sharing request', who + ' would like to see this page with you.',
        'Passwords and payment details stay hidden. You can stop at any time.', function (allow) {
          closeAsk();
          send({ type: 'consent', allow: allow });
        });
    },
    'consent.closed': closeAsk,
    // control.request asks the visitor whether msg.agent may click and type
    // on the page.
    'control.request': function (msg) {
      closeControlAsk();
      var who = (msg.agent && msg.agent.name) || 'A support agent';
      askControl = question('Control request', who + ' asks to control this page: to click and type for you.',
        'They cannot type into passwords or payment fields. Press Esc to stop at any time.', function (allow) {
          closeControlAsk();
          send({ type: 'control', allow: allow });
        });
    },
    'control.closed': closeControlAsk,
    control: function (msg) {
      controller = msg.agent || { name: 'An agent' };
      doc.addEventListener('keydown', onEscape, true);
      showBanner();
    },
    'control.ended': function () {
      controller = null;
      doc.removeEventListener('keydown', onEscape, true);
      showBanner();
    },
    // agents shows who is watching, or nothing when nobody is.
    agents: function (msg) {
      agents = {};
      (msg.agents || []).forEach(function (a) { agents[a.id] = { name: a.name, color: a.color }; });
      Object.keys(pointers).forEach(function (id) { if (!agents[id]) removePointer(id); });
      showBanner();
    },
    // pointer shows an agent's pointer at (x, y) in the viewport, with the
    // agent's name, until it stays still for a while.
    pointer: function (msg) {
      var a = agents[msg.agent];
      if (!a) return;
      ensure();
      var p = pointers[msg.agent];
      if (!p) {
        var box = el('div', 'pointer');
        var svgNS = 'http://www.w3.org/2000/svg';
        var svg = doc.createElementNS(svgNS, 'svg');
        svg.setAttribute('width', '18');
        svg.setAttribute('height', '18');
        svg.setAttribute('viewBox', '0 0 18 18');
        var path = doc.createElementNS(svgNS, 'path');
        path.setAttribute('d', 'M1 1 L1 15 L5 11 L8 17 L10.5 16 L7.5 10 L13 10 Z');
        path.setAttribute('fill', a.color);
        path.setAttribute('stroke', '#fff');
        path.setAttribute('stroke-width', '1.2');
        svg.appendChild(path);
        box.appendChild(svg);
        var label = el('span', '', a.name);
        label.style.background = a.color;
        box.appendChild(label);
        root.appendChild(box);
        p = pointers[msg.agent] = { el: box, timer: 0 };
      }
      p.el.style.left = msg.x + 'px';
      p.el.style.top = msg.y + 'px';
      p.el.hidden = false;
      clearTimeout(p.timer);
      p.timer = setTimeout(function () { p.el.hidden = true; }, POINTER_IDLE_MS);
    },
    // chat shows a new line; an agent's line opens the panel.
    chat: function (msg) {
      var m = msg.message || {};
      addChatLine(m);
      if (m.from && m.from.id && chat.hidden) showChat(true, false);
    },
    // chat.history shows the chat so far (a new page of the session).
    'chat.history': function (msg) {
      (msg.messages || []).forEach(addChatLine);
      if (chat && chat.hidden && (msg.messages || []).length) {
        unread = msg.messages.length;
        labelChatButton();
      }
    },
    // highlight outlines, for a few seconds, the element at (x, y) in the
    // agent's colour, following it through scrolling and layout changes,
    // and scrolls it into view if it is not all there.
    highlight: function (msg) {
      var a = agents[msg.agent];
      var target = doc.elementFromPoint(msg.x, msg.y);
      if (!a || !target || target === host) return;
      ensure();
      var box = el('div', 'highlight');
      box.style.borderColor = a.color;
      root.appendChild(box);
      var r0 = target.getBoundingClientRect();
      if (r0.top < 0 || r0.bottom > win.innerHeight) target.scrollIntoView({ block: 'nearest', behavior: 'smooth' });
      var until = Date.now() + HIGHLIGHT_MS;
      (function follow() {
        if (!box.isConnected) return;
        var r = target.getBoundingClientRect();
        box.style.left = (r.left - 4) + 'px';
        box.style.top = (r.top - 4) + 'px';
        box.style.width = (r.width + 2) + 'px';
        box.style.height = (r.height + 2) + 'px';
        if (Date.now() < until) {
          win.requestAnimationFrame(follow);
        } else {
          box.style.opacity = '0';
          setTimeout(function () { box.remove(); }, 700);
        }
      })();
    },
    // draw adds points to an agent's freehand stroke, drawn in its colour
    // on a transparent layer; each stroke fades once it stops growing.
    draw: function (msg) {
      var a = agents[msg.agent];
      if (!a) return;
      var key = msg.agent + ' ' + msg.stroke;
      var s = strokes[key] || (strokes[key] = { color: a.color, points: [] });
      (msg.points || []).forEach(function (p) { s.points.push(p); });
      s.last = Date.now();
      paintInk();
    },
    // offerCode shows the help button of --join code: it asks the server for
    // a support code (as window.cobrowse.showCode() does).
    offerCode: function () {
      if (help) return;
      ensure();
      help = el('button', 'panel banner open', 'Get a support code');
      help.type = 'button';
      help.title = 'A code to read to a support agent, who can then see this page with you';
      help.addEventListener('click', function () { send({ type: 'code.request' }); });
      root.appendChild(help);
    },
    // code shows the support code to read out.
    code: function (msg) {
      ensure();
      closeCode();
      codePanel = el('div', 'panel ask');
      codePanel.setAttribute('role', 'dialog');
      codePanel.setAttribute('aria-label', 'Support code');
      codePanel.appendChild(el('p', '', 'Your support code:'));
      var digits = String(msg.code || '');
      var big = el('p', 'code', digits.slice(0, 3) + ' ' + digits.slice(3));
      big.style.font = '600 32px ui-monospace, monospace';
      big.style.letterSpacing = '4px';
      codePanel.appendChild(big);
      codePanel.appendChild(el('p', 'fine', 'Read it to the support agent: they can then see this page with you (not passwords or payment details). It works for 10 minutes.'));
      var close = el('button', 'no', 'Close');
      close.type = 'button';
      close.addEventListener('click', closeCode);
      codePanel.appendChild(close);
      root.appendChild(codePanel);
      close.focus();
    },
    // code.used: an agent entered the code; the banner takes over.
    'code.used': function () {
      closeCode();
      if (help) help.remove();
      help = null;
    },
    // ended removes everything: the session is over.
    ended: function () {
      closeAsk();
      closeControlAsk();
      controller = null;
      doc.removeEventListener('keydown', onEscape, true);
      agents = {};
      Object.keys(pointers).forEach(removePointer);
      if (inkFrame) win.cancelAnimationFrame(inkFrame);
      strokes = {};
      inkFrame = 0;
      if (host) host.remove();
      host = root = banner = chat = chatList = chatButton = ink = help = codePanel = null;
    }
  };
}
