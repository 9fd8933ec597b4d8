// Tests for player.js, run with node's built-in test runner:
//
//   node --test web/agent/player.test.mjs
//
// (web/nodejs_test.go runs this from `go test ./web/`.)
//
// player.js defines window.cobrowsePlayer. Here it is evaluated in a fresh vm
// context per test with a fake rrweb Replayer that keeps the events it is
// given, so the tests see exactly what rrweb would replay: with the assetURL
// option, every resource URL mapped; without it, the events untouched.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import vm from 'node:vm';
import fs from 'node:fs';

const SOURCE = fs.readFileSync(new URL('./player.js', import.meta.url), 'utf8');

// A mapping that is easy to read in expectations.
const assetURL = (u) => 'A(' + u + ')';

function load() {
  const added = [];
  class Replayer {
    on() {}
    startLive() {}
    destroy() {}
    addEvent(e) { added.push(structuredClone(e)); }
  }
  const ctx = { rrwebReplay: { Replayer }, Date, Map, Set, console };
  ctx.window = ctx;
  vm.createContext(ctx);
  vm.runInContext(SOURCE, ctx, { filename: 'player.js' });
  return { cobrowsePlayer: ctx.cobrowsePlayer, added };
}

// replay resets a player (with options) with events, adds more, and returns
// the events the Replayer got, without their timestamps.
function replay(options, events, more = []) {
  const { cobrowsePlayer, added } = load();
  const player = cobrowsePlayer({ textContent: '' }, () => {}, options);
  assert.equal(player.reset(structuredClone(events)), true);
  player.add(structuredClone(more));
  return added.map(({ timestamp, ...e }) => e);
}

let nextID = 1;
const el = (tagName, attributes = {}, childNodes = []) => ({ type: 2, tagName, attributes, childNodes, id: nextID++ });
const text = (textContent, extra = {}) => ({ type: 3, textContent, id: nextID++, ...extra });
const meta = { type: 4, timestamp: 1, data: { href: 'https://shop.example/', width: 800, height: 600 } };
const snapshot = (...body) => ({
  type: 2, timestamp: 2,
  data: { node: { type: 0, id: 1000, childNodes: [el('html', {}, [el('head'), el('body', {}, body)])] }, initialOffset: { top: 0, left: 0 } },
});
const incremental = (data, timestamp = 3) => ({ type: 3, timestamp, data });
const bodyOf = (events) => events[1].data.node.childNodes[0].childNodes[1].childNodes;

test('without assetURL the events are replayed as they came', () => {
  const events = [meta, snapshot(el('img', { src: 'https://shop.example/a.png' }), el('div', { style: 'background: url(https://shop.example/b.png)' }))];
  const more = [incremental({ source: 8, id: 5, adds: [{ rule: 'a { background: url(https://x/c.png) }', index: 0 }] })];
  const got = replay(undefined, events, more);
  assert.deepEqual(got, [...events, ...more].map(({ timestamp, ...e }) => e));
});

test('element attributes of a full snapshot', () => {
  const body = [
    el('img', { src: 'https://shop.example/a.png', srcset: 'https://shop.example/a1.png 1x, data:image/png;base64,AA,BB 2x,https://shop.example/a3.png,, https://cdn.example/a4.png 400w,https://shop.example/a5.png,https://cdn.example/a6.png 9w' }),
    el('img', { src: 'data:image/png;base64,AAAA' }),
    el('img', { src: 'blob:https://shop.example/1234' }),
    el('img', { src: 'about:blank' }),
    el('img', { src: '  HTTPS://Shop.example/upper.png ' }),
    el('link', { rel: 'stylesheet', href: 'https://cdn.example/site.css' }),
    el('link', { rel: 'preload', as: 'image', href: 'https://shop.example/hero.png', imagesrcset: 'https://shop.example/hero2.png 2x' }),
    el('link', { rel: 'icon', href: 'https://shop.example/favicon.ico' }),
    el('a', { href: 'https://shop.example/account', style: 'color: red' }),
    el('svg', {}, [
      el('image', { href: 'https://shop.example/logo.svg' }),
      el('use', { 'xlink:href': 'https://shop.example/sprite.svg#icon-cart' }),
      el('use', { href: '#local' }),
      el('feImage', { href: 'https://shop.example/f.png' }),
    ]),
    el('video', { poster: 'https://shop.example/poster.jpg', src: 'https://media.example/v.mp4' }, [el('source', { src: 'https://media.example/v.webm' }), el('track', { src: 'https://media.example/v.vtt' })]),
    el('object', { data: 'https://shop.example/doc.svg' }),
    el('iframe', { rr_src: 'https://shop.example/frame' }),
    el('table', { background: 'https://shop.example/bg.gif' }),
    el('div', { style: "background: url('https://shop.example/b.png') , url(data:image/gif;base64,R0) ; mask: url(#m)" }),
    el('input', { value: 'https://shop.example/typed.png' }),
  ];
  const got = bodyOf(replay({ assetURL }, [meta, snapshot(...body)]));
  const attrs = (i) => got[i].attributes;
  assert.equal(attrs(0).src, 'A(https://shop.example/a.png)');
  assert.equal(attrs(0).srcset, 'A(https://shop.example/a1.png) 1x, data:image/png;base64,AA,BB 2x,A(https://shop.example/a3.png),, A(https://cdn.example/a4.png) 400w,A(https://shop.example/a5.png,https://cdn.example/a6.png) 9w', 'a URL ends at whitespace, not at a comma');
  assert.equal(attrs(1).src, 'data:image/png;base64,AAAA');
  assert.equal(attrs(2).src, 'blob:https://shop.example/1234');
  assert.equal(attrs(3).src, 'about:blank');
  assert.equal(attrs(4).src, 'A(HTTPS://Shop.example/upper.png)');
  assert.equal(attrs(5).href, 'A(https://cdn.example/site.css)');
  assert.equal(attrs(6).href, 'A(https://shop.example/hero.png)');
  assert.equal(attrs(6).imagesrcset, 'A(https://shop.example/hero2.png) 2x');
  assert.equal(attrs(7).href, 'A(https://shop.example/favicon.ico)');
  assert.deepEqual(attrs(8), { href: 'https://shop.example/account', style: 'color: red' }, 'links to pages stay');
  const svg = got[9].childNodes;
  assert.equal(svg[0].attributes.href, 'A(https://shop.example/logo.svg)');
  assert.equal(svg[1].attributes['xlink:href'], 'A(https://shop.example/sprite.svg)#icon-cart', 'the fragment stays a fragment');
  assert.equal(svg[2].attributes.href, '#local');
  assert.equal(svg[3].attributes.href, 'A(https://shop.example/f.png)');
  assert.equal(attrs(10).poster, 'A(https://shop.example/poster.jpg)');
  assert.equal(attrs(10).src, 'A(https://media.example/v.mp4)');
  assert.equal(got[10].childNodes[0].attributes.src, 'A(https://media.example/v.webm)');
  assert.equal(got[10].childNodes[1].attributes.src, 'A(https://media.example/v.vtt)');
  assert.equal(attrs(11).data, 'A(https://shop.example/doc.svg)');
  assert.equal(attrs(12).rr_src, 'https://shop.example/frame', 'rrweb does not load rr_src');
  assert.equal(attrs(13).background, 'A(https://shop.example/bg.gif)');
  assert.equal(attrs(14).style, 'background: url("A(https://shop.example/b.png)") , url(data:image/gif;base64,R0) ; mask: url(#m)');
  assert.equal(attrs(15).value, 'https://shop.example/typed.png', 'values are text');
});

test('stylesheets of a full snapshot: _cssText and <style> text', () => {
  const css = '@import url("https://shop.example/more.css"); @import "https://shop.example/print.css" print; ' +
    '@namespace svg url(http://www.w3.org/2000/svg); ' +
    '@font-face { font-family: "url(https://x/not)"; src: url(https://fonts.example/f.woff2) format("woff2"); } ' +
    '/* url(https://shop.example/comment.png) */ .a::before { content: "url(https://shop.example/string.png)"; } ' +
    '.b { background: URL( "https://shop.example/\\"q\\".png" ) } .c { background: myurl(https://x/1) #url(https://x/2) } ' +
    '.d { background: url(https://shop.example/a\\)b.png) } .e { background: url(https://shop.example/bad url) url(https://shop.example/ok.png) }';
  const want = '@import url("A(https://shop.example/more.css)"); @import "A(https://shop.example/print.css)" print; ' +
    '@namespace svg url(http://www.w3.org/2000/svg); ' +
    '@font-face { font-family: "url(https://x/not)"; src: url("A(https://fonts.example/f.woff2)") format("woff2"); } ' +
    '/* url(https://shop.example/comment.png) */ .a::before { content: "url(https://shop.example/string.png)"; } ' +
    '.b { background: URL( "A(https://shop.example/\\"q\\".png)" ) } .c { background: myurl(https://x/1) #url(https://x/2) } ' +
    '.d { background: url("A(https://shop.example/a)b.png)") } .e { background: url(https://shop.example/bad url) url("A(https://shop.example/ok.png)") }';
  const got = bodyOf(replay({ assetURL }, [meta, snapshot(
    el('link', { _cssText: css }),
    el('style', { _cssText: css }, [text(css, { isStyle: true })]),
    el('style', {}, [text('p { background: url(https://shop.example/p.png) }')]),
    el('p', {}, [text('url(https://shop.example/text-is-text.png)')]),
  )]));
  assert.equal(got[0].attributes._cssText, want);
  assert.equal(got[1].attributes._cssText, want);
  assert.equal(got[1].childNodes[0].textContent, want);
  assert.equal(got[2].childNodes[0].textContent, 'p { background: url("A(https://shop.example/p.png)") }', 'text inside <style> is CSS');
  assert.equal(got[3].childNodes[0].textContent, 'url(https://shop.example/text-is-text.png)');
});

test('mutations: adds, attributes and style text, by node id', () => {
  const link = el('link', { rel: 'stylesheet', href: 'https://shop.example/a.css' });
  const anchor = el('a', { href: 'https://shop.example/' });
  const styleText = text('a {}', { isStyle: true });
  const style = el('style', {}, [styleText]);
  const plain = text('hello');
  const div = el('div', {}, [plain]);
  const added = el('img', { src: 'https://shop.example/new.png' });
  const addedStyleText = text('b { background: url(https://shop.example/added.png) }');
  const more = [incremental({
    source: 0,
    adds: [
      { parentId: div.id, nextId: null, node: added },
      { parentId: style.id, nextId: null, node: addedStyleText },
    ],
    removes: [],
    attributes: [
      { id: link.id, attributes: { href: 'https://shop.example/b.css' } },
      { id: anchor.id, attributes: { href: 'https://shop.example/other' } },
      { id: added.id, attributes: { src: 'https://shop.example/changed.png', srcset: null } },
      { id: div.id, attributes: { style: { 'background-image': 'url("https://shop.example/d.png")', mask: ['url(https://shop.example/m.svg#x)', 'important'], color: false } } },
      { id: 424242, attributes: { src: 'https://shop.example/unknown-node.png', href: 'https://shop.example/unknown-node' } },
    ],
    texts: [
      { id: styleText.id, value: '.x { background: url(https://shop.example/x.png) }' },
      { id: addedStyleText.id, value: '.y { background: url(https://shop.example/y.png) }' },
      { id: plain.id, value: 'url(https://shop.example/plain.png)' },
    ],
  })];
  const got = replay({ assetURL }, [meta, snapshot(link, anchor, style, div)], more);
  const m = got[2].data;
  assert.equal(m.adds[0].node.attributes.src, 'A(https://shop.example/new.png)');
  assert.equal(m.adds[1].node.textContent, 'b { background: url("A(https://shop.example/added.png)") }', 'a text added to a <style> is CSS');
  assert.equal(m.attributes[0].attributes.href, 'A(https://shop.example/b.css)');
  assert.equal(m.attributes[1].attributes.href, 'https://shop.example/other');
  assert.deepEqual(m.attributes[2].attributes, { src: 'A(https://shop.example/changed.png)', srcset: null });
  assert.deepEqual(m.attributes[3].attributes.style, {
    'background-image': 'url("A(https://shop.example/d.png)")',
    mask: ['url("A(https://shop.example/m.svg)#x")', 'important'],
    color: false,
  });
  assert.deepEqual(m.attributes[4].attributes, { src: 'A(https://shop.example/unknown-node.png)', href: 'https://shop.example/unknown-node' });
  assert.equal(m.texts[0].value, '.x { background: url("A(https://shop.example/x.png)") }');
  assert.equal(m.texts[1].value, '.y { background: url("A(https://shop.example/y.png)") }');
  assert.equal(m.texts[2].value, 'url(https://shop.example/plain.png)');
});

test('stylesheet rules, declarations, adopted sheets and fonts', () => {
  const more = [
    incremental({ source: 8, id: 5, adds: [{ rule: '.a { background: url(https://shop.example/a.png) }', index: 0 }], removes: [{ index: 1 }] }),
    incremental({ source: 8, styleId: 1, replace: '.b { background: url(https://shop.example/b.png) }' }),
    incremental({ source: 8, styleId: 1, replaceSync: '.c { background: url(https://shop.example/c.png) }' }),
    incremental({ source: 13, id: 5, index: [0], set: { property: 'background', value: 'url(https://shop.example/d.png)', priority: '' } }),
    incremental({ source: 13, id: 5, index: [0], remove: { property: 'background' } }),
    incremental({ source: 15, id: 1, styleIds: [1], styles: [{ styleId: 1, rules: [{ rule: '.e { background: url(https://shop.example/e.png) }' }] }] }),
    incremental({ source: 10, family: 'F', fontSource: 'url("https://fonts.example/f.woff2") format("woff2")', buffer: false, descriptors: {} }),
    incremental({ source: 10, family: 'G', fontSource: '[1,2,3]', buffer: true, descriptors: {} }),
    incremental({ source: 2, type: 2, id: 5, x: 1, y: 2 }),
  ];
  const got = replay({ assetURL }, [meta, snapshot()], more).slice(2).map((e) => e.data);
  assert.deepEqual(got[0], { source: 8, id: 5, adds: [{ rule: '.a { background: url("A(https://shop.example/a.png)") }', index: 0 }], removes: [{ index: 1 }] });
  assert.equal(got[1].replace, '.b { background: url("A(https://shop.example/b.png)") }');
  assert.equal(got[2].replaceSync, '.c { background: url("A(https://shop.example/c.png)") }');
  assert.equal('replaceSync' in got[1] || 'replace' in got[2], false, 'no key is added');
  assert.equal(got[3].set.value, 'url("A(https://shop.example/d.png)")');
  assert.deepEqual(got[4], { source: 13, id: 5, index: [0], remove: { property: 'background' } });
  assert.equal(got[5].styles[0].rules[0].rule, '.e { background: url("A(https://shop.example/e.png)") }');
  assert.equal(got[6].fontSource, 'url("A(https://fonts.example/f.woff2)") format("woff2")');
  assert.equal(got[7].fontSource, '[1,2,3]', 'a font given as bytes is no URL');
  assert.deepEqual(got[8], { source: 2, type: 2, id: 5, x: 1, y: 2 });
});

test('a reset forgets the nodes of the page before', () => {
  const { cobrowsePlayer, added } = load();
  const player = cobrowsePlayer({ textContent: '' }, () => {}, { assetURL });
  const link = el('link', { href: 'https://shop.example/a.css' });
  player.reset([meta, snapshot(link)]);
  player.reset([meta, snapshot(el('a', { href: 'https://shop.example/' }))]);
  player.add([incremental({ source: 0, adds: [], removes: [], texts: [], attributes: [{ id: link.id, attributes: { href: 'https://shop.example/b' } }] })]);
  assert.equal(added.at(-1).data.attributes[0].attributes.href, 'https://shop.example/b');
});

test('CSS escapes and odd spellings', () => {
  const cases = [
    ['a{b:url(https://x/\\31 .png)}', 'a{b:url("A(https://x/1.png)")}'],
    ["a{b:url( 'https://x/a b.png' )}", 'a{b:url( "A(https://x/a b.png)" )}'],
    ['a{b:url(  https://x/a.png  )}', 'a{b:url("A(https://x/a.png)")}'],
    ['a{b:url("https://x/a\\\nb.png")}', 'a{b:url("A(https://x/ab.png)")}'],
    ['a{b:url("https://x/a\nb.png)} c{d:url(https://x/c.png)}', 'a{b:url("https://x/a\nb.png)} c{d:url("A(https://x/c.png)")}'],
    ['a{b:url(https://x/a.png', 'a{b:url("A(https://x/a.png)"'],
    ['a{b:-url(https://x/1) 1url(https://x/2) url (https://x/3) url\\(https://x/4)}', 'a{b:-url(https://x/1) 1url(https://x/2) url (https://x/3) url\\(https://x/4)}'],
    ['a{b:url()} c{d:url("")}', 'a{b:url()} c{d:url("")}'],
  ];
  for (const [css, want] of cases) {
    const got = bodyOf(replay({ assetURL }, [meta, snapshot(el('div', { style: css }))]));
    assert.equal(got[0].attributes.style, want, css);
  }
  // A mapped URL that needs escaping in CSS.
  const odd = (u) => 'A"\\\n(' + u + ')';
  const got = bodyOf(replay({ assetURL: odd }, [meta, snapshot(el('div', { style: 'b:url(https://x/a)' }))]));
  assert.equal(got[0].attributes.style, 'b:url("A\\"\\\\\\a (https://x/a)")');
});
