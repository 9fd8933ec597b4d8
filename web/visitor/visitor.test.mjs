// Tests for visitor.js, run with node's built-in test runner:
//
//   node --test web/visitor/visitor.test.mjs
//
// (web/visitor_js_test.go runs this from `go test ./web/`.)
//
// visitor.js is one function expression that the Go server calls with
// rrweb's `record`. Here it is evaluated in a fresh vm context per test, with
// fakes for everything it touches: window, document, location,
// sessionStorage, crypto, WebSocket and the timers (a manual clock, so that
// nothing waits on real time). The fake `record` emits a Meta and a
// FullSnapshot event synchronously, as rrweb does when it starts on a loaded
// page.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import vm from 'node:vm';
import fs from 'node:fs';
import { webcrypto } from 'node:crypto';

const SOURCE_PATH = new URL('./visitor.js', import.meta.url);
const SOURCE = fs.readFileSync(SOURCE_PATH, 'utf8');
const ID = /^[A-Za-z0-9_-]{8,64}$/; // docs/protocol.md: tab and page ids

// A manual clock: timers run only when the test advances it.
class Clock {
  constructor() {
    this.now = 0;
    this.nextId = 1; // ids are truthy, as in browsers (the script uses 0 for "none")
    this.timers = new Map(); // id -> {at, fn, every}
  }
  setTimeout(fn, ms) {
    const id = this.nextId++;
    this.timers.set(id, { at: this.now + Math.max(0, Number(ms) || 0), fn, every: 0 });
    return id;
  }
  setInterval(fn, ms) {
    const id = this.nextId++;
    const every = Math.max(1, Number(ms) || 0);
    this.timers.set(id, { at: this.now + every, fn, every });
    return id;
  }
  clear(id) {
    this.timers.delete(id);
  }
  // advance runs every timer due within ms, in time order (ties in creation
  // order), including timers that those timers set.
  advance(ms) {
    const end = this.now + ms;
    for (;;) {
      let nextId = 0, next = null;
      for (const [id, t] of this.timers) {
        if (t.at <= end && (!next || t.at < next.at || (t.at === next.at && id < nextId))) {
          next = t;
          nextId = id;
        }
      }
      if (!next) break;
      this.now = next.at;
      if (next.every) next.at += next.every;
      else this.timers.delete(nextId);
      next.fn();
    }
    this.now = end;
  }
}

// makeStorage returns a sessionStorage fake; pass one to two page loads to
// model navigations within one tab.
function makeStorage() {
  const m = new Map();
  return {
    map: m,
    getItem: (k) => (m.has(k) ? m.get(k) : null),
    setItem: (k, v) => { m.set(k, String(v)); },
  };
}

let eventCounter = 0;
function ev(label) {
  return { type: 3, timestamp: 1700000000000 + ++eventCounter, data: { source: 2, label } };
}

// visitor evaluates visitor.js in a new context and calls it with a fake
// record. Returns the fakes and helpers.
function visitor({ storage = makeStorage(), title = 'Shop', href = 'https://shop.example/cart?x=1',
  protocol = 'https:', host = 'shop.example', visible = true, focused = true, random = 0.5,
  failFirstSockets = 0, policy = {}, policyStatus = 200, validSelector = () => true } = {}) {
  const clock = new Clock();
  const log = []; // record / stop calls, in order
  const sockets = [];

  let failures = failFirstSockets;
  const warnings = [];
  class FakeWebSocket {
    constructor(url) {
      if (failures > 0) {
        failures--;
        throw new Error('SecurityError: refused by Content-Security-Policy');
      }
      this.url = url;
      this.sent = [];
      this.closed = false;
      this.onmessage = null;
      this.onclose = null;
      sockets.push(this);
    }
    send(data) {
      if (this.closed) throw new Error('send on a socket the script closed');
      if (typeof data !== 'string') throw new Error('non-string message');
      this.sent.push(data);
    }
    // close by the script: the browser reports the close later.
    close() {
      if (this.closed) return;
      this.closed = true;
      clock.setTimeout(() => this.onclose && this.onclose({ code: 1005, reason: '', wasClean: true }), 0);
    }
    // Test helpers: the server's side.
    receive(msg) {
      this.onmessage({ data: typeof msg === 'string' ? msg : JSON.stringify(msg) });
    }
    welcome(ack = 0) { this.receive({ type: 'welcome', session: 'S1', ack }); }
    serverClose(code = 1006) { this.closed = true; this.onclose({ code, reason: '', wasClean: false }); }
    messages() { return this.sent.map((s) => JSON.parse(s)); }
    batches() { return this.messages().filter((m) => m.type === undefined); }
    params() {
      const u = new URL(this.url);
      return { tab: u.searchParams.get('tab'), page: u.searchParams.get('page'), u };
    }
  }

  const windowListeners = {};
  const documentListeners = {};
  const document = {
    title,
    visibilityState: visible ? 'visible' : 'hidden',
    hasFocus: () => focused,
    addEventListener: (type, fn) => { (documentListeners[type] ||= []).push(fn); },
    querySelector: (sel) => {
      if (!validSelector(sel)) throw new Error('SyntaxError: not a valid selector');
      return null;
    },
  };
  // fetch answers the policy request at once (policyStatus, policy); null
  // for policyStatus leaves it unanswered. Its promises settle
  // synchronously, so that the script starts recording during evaluate, as
  // it does in a browser a moment later.
  const fetches = [];
  const fetch = (url, opts) => {
    fetches.push({ url, opts });
    if (policyStatus === null) return pending();
    return settled({ ok: policyStatus === 200, status: policyStatus, json: () => settled(policy) });
  };
  const location = { href, protocol, host };
  const ctx = {
    document,
    location,
    sessionStorage: storage,
    crypto: { getRandomValues: (a) => webcrypto.getRandomValues(a) },
    btoa: (s) => globalThis.btoa(s),
    WebSocket: FakeWebSocket,
    fetch,
    setTimeout: (fn, ms) => clock.setTimeout(fn, ms),
    clearTimeout: (id) => clock.clear(id),
    setInterval: (fn, ms) => clock.setInterval(fn, ms),
    clearInterval: (id) => clock.clear(id),
    addEventListener: (type, fn) => { (windowListeners[type] ||= []).push(fn); },
    console: { warn: (...args) => warnings.push(args.join(' ')) },
  };
  // The visitor UI (ui.js) is a fake that records what the script asks of
  // it; ui.send is how the fake answers, as the visitor's clicks would.
  const ui = { calls: [], send: null };
  ctx.cobrowseUI = (doc, win, send) => {
    ui.send = send;
    const call = (name) => (msg) => ui.calls.push([name, msg]);
    return {
      consent: call('consent'), 'consent.closed': call('consent.closed'), agents: call('agents'), pointer: call('pointer'),
      chat: call('chat'), 'chat.history': call('chat.history'), ended: call('ended'),
      'control.request': call('control.request'), 'control.closed': call('control.closed'),
      control: call('control'), 'control.ended': call('control.ended'),
      highlight: call('highlight'), draw: call('draw'),
      offerCode: call('offerCode'), code: call('code'), 'code.used': call('code.used'),
    };
  };
  // Remote control (control.js) is a fake that records the actions it is
  // asked to apply and refuses those whose text says "refuse".
  ui.applied = [];
  ctx.cobrowseControl = (doc, win, refusal) => {
    ui.refusal = refusal;
    return (msg) => {
      ui.applied.push(msg);
      if (msg.text === 'throw') throw new Error('boom in a page handler');
      return msg.text === 'refuse' ? 'refused by the fake' : '';
    };
  };
  ctx.window = ctx;
  vm.createContext(ctx);
  const rand = { value: random };
  vm.runInContext('Math', ctx).random = () => rand.value;

  const record = makeRecord(log);
  const h = {
    ctx, clock, log, sockets, storage, document, location, record, rand, warnings, fetches, ui,
    windowListeners, documentListeners,
    get ws() { return sockets[sockets.length - 1]; },
    get opts() { return record.calls[record.calls.length - 1]; },
    emit(e) { this.opts.emit(e); return e; },
    fire(target, type, e = {}) {
      const ls = target === 'window' ? windowListeners[type] : documentListeners[type];
      for (const fn of ls || []) fn(e);
    },
    // evaluate runs the script's source in this window, as a second copy
    // on the page would.
    evaluate(rec) { vm.runInContext(SOURCE, ctx, { filename: 'visitor.js' })(rec); },
  };
  h.evaluate(record);
  return h;
}

// settled returns a thenable fulfilled with v (rejected with err if
// rejected) whose callbacks run at once; pending one that never settles.
function settled(v, rejected = false, err) {
  return {
    then(onOk, onErr) {
      try {
        if (rejected) return onErr ? settled(onErr(err)) : this;
        const next = onOk ? onOk(v) : v;
        return next && typeof next.then === 'function' ? next : settled(next);
      } catch (e) {
        return settled(undefined, true, e);
      }
    },
  };
}
function pending() { return { then() { return pending(); } }; }

// makeRecord returns a fake rrweb record: it captures the options, emits
// Meta + FullSnapshot at once, and returns a stop function.
function makeRecord(log) {
  function record(opts) {
    record.calls.push(opts);
    const n = record.calls.length;
    log.push('record');
    const meta = { type: 4, timestamp: 1700000000000 + ++eventCounter, data: { href: 'https://shop.example/cart?x=1', n } };
    const full = { type: 2, timestamp: 1700000000000 + ++eventCounter, data: { node: {}, n } };
    record.snapshots.push([meta, full]);
    opts.emit(meta);
    opts.emit(full);
    return function stop() {
      record.stops++;
      log.push('stop');
    };
  }
  record.calls = [];
  record.snapshots = [];
  record.stops = 0;
  record.fullSnapshots = [];
  record.takeFullSnapshot = function (isCheckout) {
    record.fullSnapshots.push(isCheckout);
    const opts = record.calls[record.calls.length - 1];
    opts.emit({ type: 4, timestamp: 1700000000000 + ++eventCounter, data: { href: 'x', checkout: true } });
    opts.emit({ type: 2, timestamp: 1700000000000 + ++eventCounter, data: { node: {}, checkout: true } });
  };
  return record;
}

// sendBatch emits events and lets the flush window pass.
function sendBatch(h, n = 1) {
  const es = [];
  for (let i = 0; i < n; i++) es.push(h.emit(ev('b')));
  h.clock.advance(40);
  return es;
}

test('events within the flush window become one batch; seqs count up; the URL carries tab and page ids', () => {
  const h = visitor({ href: 'http://shop.example/', protocol: 'http:', host: 'shop.example:8080' });
  assert.equal(h.record.calls.length, 1);
  assert.equal(h.sockets.length, 1);
  const ws = h.ws;
  const { tab, page, u } = ws.params();
  assert.equal(u.protocol, 'ws:');
  assert.equal(u.host, 'shop.example:8080');
  assert.equal(u.pathname, '/__cobrowse/ws');
  assert.match(tab, ID);
  assert.match(page, ID);
  assert.notEqual(tab, page);
  assert.equal(h.storage.getItem('__cobrowse_tab'), tab, 'the tab id is kept in sessionStorage');
  assert.equal(ws.sent.length, 0, 'nothing is sent before the welcome');

  ws.welcome(0);
  const [meta, full] = h.record.snapshots[0];
  h.clock.advance(5);
  const e1 = h.emit(ev('e1'));
  h.clock.advance(10);
  const e2 = h.emit(ev('e2'));
  h.clock.advance(20);
  const e3 = h.emit(ev('e3'));
  assert.deepEqual(ws.batches(), [], 'nothing is sent within the flush window');
  h.clock.advance(5); // 40 ms after the first event
  assert.deepEqual(ws.batches(), [{ seq: 1, events: [meta, full, e1, e2, e3] }]);

  const e4 = h.emit(ev('e4'));
  h.clock.advance(40);
  const e5 = h.emit(ev('e5'));
  const e6 = h.emit(ev('e6'));
  h.clock.advance(40);
  h.clock.advance(1000); // an idle window sends no empty batch
  assert.deepEqual(ws.batches(), [
    { seq: 1, events: [meta, full, e1, e2, e3] },
    { seq: 2, events: [e4] },
    { seq: 3, events: [e5, e6] },
  ]);
  // Every batch is its own message: {seq, events} and nothing else.
  for (const m of ws.batches()) assert.deepEqual(Object.keys(m).sort(), ['events', 'seq']);
});

test('tab id is stable across page loads of the tab; page id is new per load; wss on https', () => {
  const storage = makeStorage();
  const a = visitor({ storage });
  const b = visitor({ storage });
  assert.equal(a.ws.params().u.protocol, 'wss:');
  assert.equal(a.ws.params().tab, b.ws.params().tab);
  assert.notEqual(a.ws.params().page, b.ws.params().page);
  const c = visitor(); // another tab
  assert.notEqual(a.ws.params().tab, c.ws.params().tab);

  // Storage that throws (disabled): still connects, with a valid id.
  const broken = { getItem() { throw new Error('SecurityError'); }, setItem() { throw new Error('SecurityError'); } };
  const d = visitor({ storage: broken });
  assert.equal(d.sockets.length, 1);
  assert.match(d.ws.params().tab, ID);
});

test('a batch is sent early at 500 events', () => {
  const h = visitor();
  h.ws.welcome(0);
  h.clock.advance(40); // batch 1: meta + full
  for (let i = 0; i < 499; i++) h.emit(ev('x'));
  assert.equal(h.ws.batches().length, 1);
  h.emit(ev('x'));
  assert.equal(h.ws.batches().length, 2, 'the 500th event sends the batch without waiting');
  assert.equal(h.ws.batches()[1].events.length, 500);
  assert.equal(h.ws.batches()[1].seq, 2);
});

test('events emitted before the welcome are sent in order right after it, each once', () => {
  const h = visitor();
  const ws = h.ws;
  const [meta, full] = h.record.snapshots[0];
  const e1 = h.emit(ev('e1'));
  h.clock.advance(40); // batch 1 is built while offline
  const e2 = h.emit(ev('e2'));
  h.clock.advance(40); // batch 2
  const e3 = h.emit(ev('e3')); // still pending when the welcome comes
  h.clock.advance(1000);
  const e4 = h.emit(ev('e4'));
  assert.equal(ws.sent.length, 0, 'nothing is sent before the welcome');

  ws.welcome(0);
  // At once, without waiting for a timer:
  assert.deepEqual(ws.batches(), [
    { seq: 1, events: [meta, full, e1] },
    { seq: 2, events: [e2] },
    { seq: 3, events: [e3] },
  ]);
  h.clock.advance(40);
  const e5 = h.emit(ev('e5'));
  h.clock.advance(40);
  h.clock.advance(5000);
  const batches = ws.batches();
  assert.deepEqual(batches.map((b) => b.seq), [1, 2, 3, 4, 5], 'each batch exactly once, in order');
  assert.deepEqual(batches.flatMap((b) => b.events), [meta, full, e1, e2, e3, e4, e5]);
  assert.equal(new Set(ws.sent).size, ws.sent.length, 'no message is sent twice on one socket');
});

test('after a reconnect only the batches above welcome.ack are resent, after the backoff', () => {
  const h = visitor();
  const ws1 = h.ws;
  ws1.welcome(0);
  h.clock.advance(40); // batch 1
  sendBatch(h); // 2
  sendBatch(h); // 3
  sendBatch(h); // 4
  const sent = ws1.batches();
  assert.deepEqual(sent.map((b) => b.seq), [1, 2, 3, 4]);
  const raw = new Map(ws1.sent.filter((s) => JSON.parse(s).seq).map((s) => [JSON.parse(s).seq, s]));

  ws1.serverClose();
  assert.equal(h.sockets.length, 1, 'no reconnect before the backoff timer');
  h.clock.advance(249); // random() = 0.5: the first delay is exactly 250 ms
  assert.equal(h.sockets.length, 1, 'no reconnect before the backoff timer');
  h.clock.advance(1);
  assert.equal(h.sockets.length, 2, 'reconnects when the backoff timer fires');
  const ws2 = h.ws;
  assert.deepEqual(ws2.params().page, ws1.params().page, 'same page load');
  assert.deepEqual(ws2.params().tab, ws1.params().tab);
  assert.equal(ws2.sent.length, 0, 'nothing is sent before the welcome');

  ws2.welcome(2);
  const resent = ws2.sent.filter((s) => JSON.parse(s).seq);
  assert.deepEqual(resent, [raw.get(3), raw.get(4)], 'exactly batches 3 and 4, in order, unchanged');

  // New batches go on from 5; acks keep shrinking the backlog.
  sendBatch(h);
  assert.deepEqual(ws2.batches().map((b) => b.seq), [3, 4, 5]);
  ws2.receive({ type: 'ack', seq: 4 });
  ws2.serverClose();
  h.clock.advance(250);
  assert.equal(h.sockets.length, 3);
  h.ws.welcome(4);
  assert.deepEqual(h.ws.batches().map((b) => b.seq), [5]);
  assert.equal(h.record.calls.length, 1, 'no new page load');
});

test('reconnect resends the backlog in order when the server holds nothing yet', () => {
  const h = visitor();
  h.ws.welcome(0);
  h.clock.advance(40);
  sendBatch(h);
  sendBatch(h);
  h.ws.receive({ type: 'ack', seq: 1 });
  h.ws.serverClose();
  sendBatch(h); // batch 4 built while offline
  h.clock.advance(250);
  const ws2 = h.ws;
  assert.equal(h.sockets.length, 2);
  ws2.welcome(1);
  assert.deepEqual(ws2.batches().map((b) => b.seq), [2, 3, 4]);
  assert.equal(h.record.calls.length, 1, 'no new page load');
});

test('backoff doubles from 250 ms to 10 s and resets after a welcome', () => {
  const h = visitor();
  const delays = [];
  for (let i = 0; i < 8; i++) {
    const before = h.sockets.length;
    h.ws.serverClose();
    let waited = 0;
    while (h.sockets.length === before) {
      h.clock.advance(1);
      waited++;
      assert.ok(waited <= 20000, 'no reconnect within 20 s');
    }
    delays.push(waited);
  }
  assert.deepEqual(delays, [250, 500, 1000, 2000, 4000, 8000, 10000, 10000]);
  h.ws.welcome(0);
  h.ws.serverClose();
  h.clock.advance(249);
  assert.equal(h.sockets.length, 9);
  h.clock.advance(1);
  assert.equal(h.sockets.length, 10, 'backoff is back at 250 ms after a welcome');

  // Jitter: the delay is backoff * [0.5, 1.5).
  const j = visitor({ random: 0 });
  j.ws.serverClose();
  j.clock.advance(124);
  assert.equal(j.sockets.length, 1);
  j.clock.advance(1);
  assert.equal(j.sockets.length, 2);
});

test('a welcome below the acked seq starts a new page load; the old sockets are ignored', () => {
  const h = visitor();
  const ws1 = h.ws;
  const page1 = ws1.params().page;
  ws1.welcome(0);
  h.clock.advance(40);
  sendBatch(h);
  sendBatch(h);
  sendBatch(h);
  for (const seq of [1, 2, 3]) ws1.receive({ type: 'ack', seq });
  ws1.serverClose();
  h.clock.advance(250);
  const ws2 = h.ws;
  assert.equal(ws2.params().page, page1);
  assert.deepEqual(h.log, ['record']);

  ws2.welcome(0); // the server restarted and lost the page
  assert.deepEqual(h.log, ['record', 'stop', 'record'], 'stopRecording, then record again');
  assert.equal(h.record.stops, 1);
  assert.ok(ws2.closed, 'the old socket is closed');
  assert.equal(h.sockets.length, 3, 'a new socket at once');
  const ws3 = h.ws;
  const page2 = ws3.params().page;
  assert.match(page2, ID);
  assert.notEqual(page2, page1, 'a new page id');
  assert.equal(ws3.params().tab, ws1.params().tab, 'same tab');
  assert.equal(ws2.batches().length, 0, 'the old page\'s batches are not resent');

  ws3.welcome(0);
  h.clock.advance(40);
  const [meta2, full2] = h.record.snapshots[1];
  assert.deepEqual(ws3.batches(), [{ seq: 1, events: [meta2, full2] }], 'seq restarts at 1 with the new snapshot');

  // Late messages on the old sockets belong to the old page.
  ws2.receive({ type: 'ack', seq: 1 });
  ws2.receive({ type: 'ack', seq: 9 });
  ws1.receive({ type: 'ack', seq: 1 });
  ws2.receive({ type: 'welcome', session: 'S1', ack: 0 });
  ws2.receive({ type: 'snapshot' });
  h.clock.advance(20000); // the old socket's close event fires: no reconnect
  assert.equal(h.sockets.length, 3, 'the old socket\'s close does not reconnect');
  assert.equal(h.record.fullSnapshots.length, 0);

  // Batch 1 of the new page is still unacked: it is resent after a reconnect.
  ws3.serverClose();
  h.clock.advance(250);
  assert.equal(h.sockets.length, 4);
  const ws4 = h.ws;
  assert.equal(ws4.params().page, page2);
  ws4.welcome(0);
  assert.equal(h.record.calls.length, 2, 'no further page load');
  assert.deepEqual(ws4.batches(), [{ seq: 1, events: [meta2, full2] }]);
});

test('an unacked backlog past 32 MiB starts a new page load', () => {
  const h = visitor();
  const page1 = h.ws.params().page;
  h.ws.serverClose();
  const big = 'x'.repeat(6 * 1024 * 1024); // one batch each, under the 8 Mi-character batch bound
  h.clock.advance(40); // batch 1: snapshot
  for (let i = 0; i < 5; i++) {
    h.emit({ type: 3, timestamp: i, data: { big } });
    h.clock.advance(40);
  }
  assert.equal(h.record.calls.length, 1, 'still within the bound');
  h.emit({ type: 3, timestamp: 9, data: { big } });
  h.clock.advance(40); // past 32 Mi characters
  assert.deepEqual(h.log, ['record', 'stop', 'record']);
  const ws = h.ws;
  assert.notEqual(ws.params().page, page1);
  ws.welcome(0);
  h.clock.advance(40);
  const [meta2, full2] = h.record.snapshots[1];
  assert.deepEqual(ws.batches(), [{ seq: 1, events: [meta2, full2] }], 'the backlog is dropped');
  h.clock.advance(20000);
  assert.equal(h.sockets.length, h.sockets.indexOf(ws) + 1, 'no further connection');
});

test('a single change too large to deliver stops recording on the page, without a restart loop', () => {
  const h = visitor();
  h.ws.welcome(0);
  h.clock.advance(40);
  const sentBefore = h.ws.sent.length;
  h.emit({ type: 3, timestamp: 1, data: { huge: 'x'.repeat(8 * 1024 * 1024 + 1) } });
  h.clock.advance(40);
  assert.deepEqual(h.log, ['record', 'stop'], 'recording stopped, not restarted');
  assert.equal(h.ws.sent.length, sentBefore, 'nothing sent');
  assert.match(h.warnings.join('\n'), /too large to share/);
  h.clock.advance(60000);
  assert.equal(h.sockets.length, 1, 'no reconnect loop');
  assert.equal(h.record.calls.length, 1, 'no new snapshot loop');
});

test('a WebSocket constructor that throws is retried with backoff', () => {
  const h = visitor({ failFirstSockets: 1 });
  assert.equal(h.sockets.length, 0, 'the first attempt threw');
  h.clock.advance(10);
  assert.equal(h.sockets.length, 0, 'not retried at once');
  h.clock.advance(400);
  assert.equal(h.sockets.length, 1, 'retried after the backoff');
  h.ws.welcome(0);
  h.clock.advance(40);
  assert.equal(h.ws.batches().length, 1, 'the snapshot goes out on the retried socket');
});

test('a tampered tab id in sessionStorage is replaced', () => {
  const storage = makeStorage();
  storage.setItem('__cobrowse_tab', 'bad id/with spaces');
  const h = visitor({ storage });
  assert.match(h.ws.params().tab, ID);
  assert.equal(storage.getItem('__cobrowse_tab'), h.ws.params().tab);
});

test('card-expiry selects are blocked (rrweb cannot mask one select alone)', () => {
  const h = visitor();
  assert.equal(h.opts.blockSelector, 'select[autocomplete*="cc-"]');
});

test('{"type":"snapshot"} takes a full snapshot (checkout)', () => {
  const h = visitor();
  h.ws.welcome(0);
  h.clock.advance(40);
  assert.deepEqual(h.record.fullSnapshots, []);
  h.ws.receive({ type: 'snapshot' });
  assert.deepEqual(h.record.fullSnapshots, [true]);
  h.clock.advance(40);
  const b = h.ws.batches();
  assert.equal(b.length, 2);
  assert.deepEqual(b[1].events.map((e) => e.type), [4, 2], 'the new snapshot goes out as the next batch');
  // Junk and unknown types are ignored.
  h.ws.receive('not json');
  h.ws.receive({ type: 'nope' });
  assert.deepEqual(h.record.fullSnapshots, [true]);
});

function el(attrs) {
  return { getAttribute: (n) => (Object.prototype.hasOwnProperty.call(attrs, n) ? attrs[n] : null) };
}

test('masking: passwords and payment-card fields are masked, other inputs are not', () => {
  const h = visitor();
  const { maskInputFn, maskInputOptions } = h.opts;
  assert.equal(typeof maskInputFn, 'function');
  assert.equal(maskInputOptions.password, true);
  for (const t of ['text', 'email', 'tel', 'number', 'search', 'url', 'textarea']) {
    assert.equal(maskInputOptions[t], true, `${t} inputs go through maskInputFn`);
  }
  // cc-exp may be an <input type="month">; date-like types go through it too.
  for (const t of ['month', 'date', 'week']) {
    assert.equal(maskInputOptions[t], true, `${t} inputs go through maskInputFn`);
  }
  const secret = 'hunter2 4111';
  const masked = '*'.repeat(secret.length);
  const cases = [
    [{ type: 'password' }, masked],
    [{ type: 'PASSWORD' }, masked],
    [{ type: 'text', autocomplete: 'cc-number' }, masked],
    [{ autocomplete: 'cc-exp' }, masked],
    [{ type: 'month', autocomplete: 'cc-exp' }, masked],
    [{ autocomplete: 'billing cc-csc' }, masked],
    [{ autocomplete: 'CC-Name' }, masked],
    [{ type: 'password', autocomplete: 'new-password' }, masked],
    [{ type: 'text', autocomplete: 'new-password' }, masked],
    [{ autocomplete: 'current-password' }, masked],
    [{ type: 'text', autocomplete: 'one-time-code' }, masked],
    [{ autocomplete: 'section-login one-time-code' }, masked],
    // a password field the page switched to type=text ("show password"):
    // rrweb marks it with data-rr-is-password.
    [{ type: 'text', 'data-rr-is-password': 'true' }, masked],
    [{ type: 'text', name: 'name', autocomplete: 'name' }, secret],
    [{ type: 'email', autocomplete: 'email' }, secret],
    [{ type: 'text' }, secret],
    [{}, secret],
    [{ autocomplete: 'off' }, secret],
    [{ autocomplete: 'username' }, secret],
    [{ autocomplete: 'acc-number' }, secret],
    [{ autocomplete: 'new-passwords' }, secret],
  ];
  for (const [attrs, want] of cases) {
    assert.equal(maskInputFn(secret, el(attrs)), want, JSON.stringify(attrs));
  }
  assert.equal(maskInputFn('abc', undefined), '***', 'no element: masked');
  assert.equal(maskInputFn('abc', null), '***', 'no element: masked');
  assert.equal(maskInputFn('', el({ type: 'password' })), '');
});

test('a second copy of the script on the same window does nothing', () => {
  const h = visitor();
  assert.equal(h.ctx.__cobrowseVisitor, true);
  const second = makeRecord([]);
  h.evaluate(second);
  assert.equal(second.calls.length, 0, 'no second record');
  assert.equal(h.record.calls.length, 1);
  assert.equal(h.sockets.length, 1, 'no second socket');
  // The first copy works on.
  h.ws.welcome(0);
  h.clock.advance(40);
  assert.equal(h.ws.batches().length, 1);
  assert.equal(h.sockets.length, 1);
});

test('page info is sent after the welcome and when the URL or title changes', () => {
  const h = visitor({ title: 'Cart', href: 'https://shop.example/cart' });
  h.clock.advance(3000);
  assert.equal(h.ws.sent.length, 0, 'nothing before the welcome');
  h.ws.welcome(0);
  const pages = () => h.ws.messages().filter((m) => m.type === 'page');
  assert.deepEqual(pages(), [{ type: 'page', url: 'https://shop.example/cart', title: 'Cart', pixelRatio: 1 }]);

  h.clock.advance(1000);
  assert.equal(pages().length, 1, 'no change, nothing new');
  h.document.title = 'Cart (2)';
  h.clock.advance(999);
  assert.equal(pages().length, 1);
  h.clock.advance(1);
  assert.deepEqual(pages()[1], { type: 'page', url: 'https://shop.example/cart', title: 'Cart (2)', pixelRatio: 1 });
  h.clock.advance(5000);
  assert.equal(pages().length, 2, 'no change, nothing new');
  h.location.href = 'https://shop.example/checkout';
  h.clock.advance(1000);
  assert.deepEqual(pages()[2], { type: 'page', url: 'https://shop.example/checkout', title: 'Cart (2)', pixelRatio: 1 });

  // Changes while offline are reported on the next connection; the current
  // page is always reported after a welcome.
  h.ws.serverClose();
  h.document.title = 'Checkout';
  h.clock.advance(250);
  assert.equal(h.sockets.length, 2);
  h.clock.advance(1000);
  assert.equal(h.ws.sent.length, 0);
  h.ws.welcome(0);
  assert.deepEqual(h.ws.messages().filter((m) => m.type === 'page'),
    [{ type: 'page', url: 'https://shop.example/checkout', title: 'Checkout', pixelRatio: 1 }]);
  // ... also when nothing changed while offline.
  h.ws.serverClose();
  h.clock.advance(250);
  assert.equal(h.sockets.length, 3);
  h.ws.welcome(0);
  assert.deepEqual(h.ws.messages().filter((m) => m.type === 'page'),
    [{ type: 'page', url: 'https://shop.example/checkout', title: 'Checkout', pixelRatio: 1 }]);
  // A new pixel ratio (the window moved to another screen, or zoom) is
  // reported too: the renderer draws at it.
  h.ctx.devicePixelRatio = 2;
  h.clock.advance(1000);
  assert.deepEqual(h.ws.messages().filter((m) => m.type === 'page').pop(),
    { type: 'page', url: 'https://shop.example/checkout', title: 'Checkout', pixelRatio: 2 });
});

test('focus is reported after the welcome when the tab is focused, and on focus events', () => {
  const h = visitor({ visible: true, focused: true });
  const focus = () => h.ws.messages().filter((m) => m.type === 'focus').length;
  h.fire('window', 'focus');
  assert.equal(h.ws.sent.length, 0, 'nothing before the welcome');
  h.ws.welcome(0);
  assert.equal(focus(), 1);
  h.fire('window', 'focus');
  assert.equal(focus(), 2);
  h.document.visibilityState = 'hidden';
  h.fire('document', 'visibilitychange');
  assert.equal(focus(), 2);
  h.document.visibilityState = 'visible';
  h.fire('document', 'visibilitychange');
  assert.equal(focus(), 3);

  const bg = visitor({ visible: true, focused: false });
  bg.ws.welcome(0);
  assert.equal(bg.ws.messages().filter((m) => m.type === 'focus').length, 0, 'a background tab does not claim focus');
  const hidden = visitor({ visible: false, focused: true });
  hidden.ws.welcome(0);
  assert.equal(hidden.ws.messages().filter((m) => m.type === 'focus').length, 0);
});

test('pagehide flushes at once; a page restored from bfcache is a new page load', () => {
  const h = visitor();
  h.ws.welcome(0);
  h.clock.advance(40);
  const e = h.emit(ev('last'));
  h.fire('window', 'pagehide', { persisted: true });
  assert.deepEqual(h.ws.batches()[1], { seq: 2, events: [e] }, 'sent without waiting for the timer');

  const page1 = h.ws.params().page;
  h.fire('window', 'pageshow', { persisted: false });
  assert.equal(h.sockets.length, 1, 'an ordinary pageshow changes nothing');
  h.fire('window', 'pageshow', { persisted: true });
  assert.deepEqual(h.log, ['record', 'stop', 'record']);
  assert.equal(h.sockets.length, 2);
  assert.notEqual(h.ws.params().page, page1);
});

test('the page policy is fetched before recording and applied to rrweb', () => {
  const h = visitor({
    href: 'https://shop.example/account/home?x=1',
    policy: {
      maskTextSelector: '.secret,#holder', blockSelector: '#ssn-block',
      maskInputSelector: 'input[type="email" i],.secret,.secret *', maskAllInputs: false,
    },
  });
  assert.equal(h.fetches.length, 1);
  assert.equal(h.fetches[0].url, '/__cobrowse/policy?url=' + encodeURIComponent('https://shop.example/account/home?x=1'));
  assert.equal(h.fetches[0].opts.credentials, 'same-origin');
  assert.equal(h.record.calls.length, 1, 'recording started once the policy came');
  assert.equal(h.opts.maskTextSelector, '.secret,#holder');
  assert.equal(h.opts.blockSelector, 'select[autocomplete*="cc-"],#ssn-block');
  const matching = (sel) => ({ getAttribute: () => null, matches: (s) => s === sel });
  assert.equal(h.opts.maskInputFn('jane', matching('input[type="email" i],.secret,.secret *')), '****');
  assert.equal(h.opts.maskInputFn('jane', { getAttribute: () => null, matches: () => false }), 'jane');
  assert.equal(h.opts.maskInputFn('jane', el({ type: 'password' })), '****', 'passwords whatever the policy');
});

test('maskAllInputs masks every field; a blocked page records an empty body', () => {
  const all = visitor({ policy: { maskAllInputs: true } });
  assert.equal(all.opts.maskInputFn('red shoes', { getAttribute: () => null, matches: () => false }), '*********');
  const blocked = visitor({ policy: { blockPage: true, maskTextSelector: '.x' } });
  assert.equal(blocked.opts.blockSelector, 'body');
});

test('selectors this browser does not understand mask more, not less', () => {
  const h = visitor({
    policy: { maskTextSelector: ':bad(', maskInputSelector: ':bad(', blockSelector: '.fine' },
    validSelector: (sel) => !sel.includes(':bad('),
  });
  assert.equal(h.opts.maskTextSelector, '*', 'all text masked');
  assert.equal(h.opts.maskInputFn('red', { getAttribute: () => null, matches: () => false }), '***', 'all fields masked');
  assert.equal(h.opts.blockSelector, 'select[autocomplete*="cc-"],.fine');
  const b = visitor({ policy: { blockSelector: ':bad(' }, validSelector: (sel) => !sel.includes(':bad(') });
  assert.equal(b.opts.blockSelector, 'body', 'a remove selector it cannot apply blocks the page');
});

test('without a policy (error or no answer) the built-in masking applies, and recording still starts', () => {
  const failed = visitor({ policyStatus: 500 });
  assert.equal(failed.record.calls.length, 1);
  assert.equal(failed.opts.maskTextSelector, undefined);
  assert.equal(failed.opts.blockSelector, 'select[autocomplete*="cc-"]');
  assert.match(failed.warnings.join('\n'), /masking policy unavailable \(Error: HTTP 500\)/);

  const slow = visitor({ policyStatus: null });
  assert.equal(slow.record.calls.length, 0, 'nothing is recorded while the policy may still come');
  assert.equal(slow.sockets.length, 0);
  slow.clock.advance(2999);
  assert.equal(slow.record.calls.length, 0);
  slow.clock.advance(1);
  assert.equal(slow.record.calls.length, 1, 'after 3 s, with the built-in masking');
  assert.equal(slow.sockets.length, 1);
  assert.match(slow.warnings.join('\n'), /no answer in 3000 ms/);
});

test('the hub\'s session messages go to the visitor UI; its answers go back', () => {
  const h = visitor();
  h.ws.welcome(0);
  h.ws.receive({ type: 'consent', agent: { id: 'a001', name: 'Alice', color: '#4f46e5' } });
  h.ws.receive({ type: 'agents', agents: [{ id: 'a001', name: 'Alice', color: '#4f46e5' }] });
  h.ws.receive({ type: 'pointer', agent: 'a001', x: 3, y: 4 });
  h.ws.receive({ type: 'consent.closed' });
  // Names that are not handlers, also inherited ones, are ignored.
  h.ws.receive({ type: 'toString' });
  h.ws.receive({ type: '__proto__' });
  assert.deepEqual(h.ui.calls.map((c) => c[0]), ['consent', 'agents', 'pointer', 'consent.closed']);
  assert.equal(h.ui.calls[2][1].x, 3);

  h.ui.send({ type: 'consent', allow: true });
  assert.deepEqual(h.ws.messages().pop(), { type: 'consent', allow: true });
});

test('"ended" stops the page: no recording, no socket, no reconnect', () => {
  const h = visitor();
  h.ws.welcome(0);
  h.clock.advance(100); // the page's first batch goes out
  h.ws.receive({ type: 'ended' });
  assert.deepEqual(h.ui.calls.map((c) => c[0]), ['ended']);
  assert.equal(h.record.stops, 1, 'recording stopped');
  assert.ok(h.ws.closed, 'socket closed');
  h.clock.advance(60000);
  assert.equal(h.sockets.length, 1, 'no reconnect after the end');
  h.emit(ev('after'));
  h.clock.advance(1000);
  assert.equal(h.sockets[0].batches().length, 1, 'nothing sent after the end (only the first page batch)');
});

test('remote control: input is applied only for the agent in control, refusals go back', () => {
  const h = visitor();
  h.ws.welcome(0);
  const input = (agent, seq, text) => h.ws.receive({ type: 'input', agent, seq, action: 'text', text, x: 0, y: 0 });
  input('a001', 1, 'before');
  assert.deepEqual(h.ui.applied, [], 'nothing applied before control is granted');
  assert.deepEqual(h.ws.messages().pop(), { type: 'input.result', agent: 'a001', inputSeq: 1, ok: false, text: 'the visitor has taken control back' });

  h.ws.receive({ type: 'control', agent: { id: 'a001', name: 'Alice' } });
  input('a001', 2, 'hello');
  input('a002', 3, 'bob');
  input('a001', 4, 'refuse');
  assert.deepEqual(h.ui.applied.map((m) => m.text), ['hello', 'refuse'], "only Alice's input is applied");
  const results = h.ws.messages().filter((m) => m.type === 'input.result');
  assert.deepEqual(results.slice(1).map((m) => [m.inputSeq, m.text]), [[3, 'the visitor has taken control back'], [4, 'refused by the fake']]);

  // An action that throws is the agent's refusal, not the script's end.
  input('a001', 6, 'throw');
  assert.match(h.ws.messages().pop().text, /could not be done on this page: Error: boom/);

  h.ws.receive({ type: 'control.ended' });
  input('a001', 5, 'after');
  assert.equal(h.ui.applied.length, 3, 'nothing applied after control ended');
  assert.deepEqual(h.ui.calls.map((c) => c[0]), ['control', 'control.ended']);
});

test('the policy\'s no_control elements and masked fields are refused to agents', () => {
  const h = visitor({ policy: { noControlSelector: 'button.pay', maskInputSelector: '#holder' } });
  const el = (tagName, matches) => ({ tagName, type: 'text', getAttribute: () => null, matches: (sel) => matches.includes(sel), closest: (sel) => (matches.includes(sel) ? {} : null) });
  assert.match(h.ui.refusal(el('BUTTON', ['button.pay'])), /policy does not let agents/);
  assert.match(h.ui.refusal(el('INPUT', ['#holder'])), /masked/);
  assert.equal(h.ui.refusal(el('BUTTON', [])), '');
});

test('--join code: the help button is offered, and window.cobrowse.showCode asks for a code', () => {
  const h = visitor();
  h.ws.receive({ type: 'welcome', session: 'S1', ack: 0, join: 'code' });
  assert.deepEqual(h.ui.calls.map((c) => c[0]), ['offerCode']);
  h.ctx.cobrowse.showCode();
  assert.deepEqual(h.ws.messages().pop(), { type: 'code.request' });
  h.ws.receive({ type: 'code', code: '123456' });
  assert.equal(h.ui.calls.pop()[1].code, '123456');
});

test('a welcome into another session clears the visitor UI of the old one', () => {
  const h = visitor();
  h.ws.welcome(0); // session S1
  h.ws.receive({ type: 'control', agent: { id: 'a001', name: 'Alice' } });
  h.ws.serverClose();
  h.clock.advance(300);
  h.ws.receive({ type: 'welcome', session: 'S2', ack: 0 });
  assert.deepEqual(h.ui.calls.map((c) => c[0]), ['control', 'ended']);
  // Alice controlled S1, not S2: her input is refused now.
  h.ws.receive({ type: 'input', agent: 'a001', seq: 1, action: 'click', x: 0, y: 0 });
  assert.equal(h.ui.applied.length, 0);
});
