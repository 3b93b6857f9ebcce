"""A static, serverless HTML viewer for debate transcripts that scales to the paper's
~60,000 transcripts.

It is opened from disk (file://), attached to a report or archived next to the run; it
loads nothing from the network. Chromium blocks fetch() of local files, so the data
are JavaScript files loaded with injected <script src> elements, each calling a
registration function:

    debates.html          the page: CSS, the constant script, the controls
    debates/index.js      viewerIndex({...}): one compact column per filter and sort field
    debates/t00000.js     viewerTerms(0, [term, posting, ...]): one shard of the full-text
    debates/t00001.js     index; a search loads only the shards of its words
    debates/p00000.js     viewerPage(0, [...]): transcripts 0-199 in display order, in full
    debates/p00001.js     ...

Display order is protocol (so a protocol filter reads contiguous data files), then sample
id in natural order (demo-2 before demo-10), then debate index.

Search. Each whitespace-separated token of the query matches a transcript whose sample
id starts with it (case-insensitive; an exact id ranks first), or whose words (sample
text and every turn) include all of the token's words. Words are maximal runs of
letters, digits and "_", lower-cased and cut at MAX_TERM characters, the same in Python
(`\\w+`) and in the page (`[\\p{L}\\p{N}_]+`). The inverted index is sharded by a hash of
the term (FNV-1a over code points, the same in both); a posting is the gaps between the
term's transcripts' display positions, or a little-endian bitset in base64 where that is
smaller, so no term costs more than total/6 bytes. The number of shards grows with the
index so that every shard stays under MAX_SHARD_BYTES: what one search loads does not grow
with the run.

Views (all in the URL's fragment, so every view is a link): cards (50 transcripts a page),
a compact sortable table built from the index alone (id, protocol, split, gold, each weak
labeller right/wrong and P(1); a row opens its debate), and one debate
(`#sample/<id>/<protocol>/<k>`, with previous/next through the current filter and sort,
keys j/k or arrows, Escape back).

Escaping: run text is data, never markup. In the HTML it appears only as escaped text
(title, labeller and protocol names in the controls); the one inline script is constant.
In the data files everything is JSON-encoded with every "<" written as \\u003c, so no data
file can contain "</script>" or "<!--", and the page builds the DOM with textContent and
createElement only (never innerHTML).
"""
from __future__ import annotations

import base64
import json
import re
from array import array
from collections.abc import Iterator
from html import escape
from pathlib import Path
from urllib.parse import quote

import numpy as np

from w2s_base.decision import predicted_label_tie_as_1
from w2s_base.runfolder.layout import RunLayout
from w2s_base.runfolder.artifacts import save_artifact
from w2s_base.protocols import PROTOCOLS
from w2s_base.protocols import protocol as protocol_spec
from debate.engine import load_transcripts
from debate.quotes import GradeCounts, read_quote_grades
from debate.transcript import Transcript, Turn
from weak.labels import LabellerResult

FILE_SIZE = 200       # transcripts per data file
PER_PAGE = 50         # transcripts rendered per page of cards
TABLE_PER_PAGE = 100  # rows per page of the table
INDEX_VERSION = 2
MAX_TERM = 40                    # characters of a word kept in the search index
SHARD_BYTES = 256 * 1024         # the search index's shards aim at this size ...
MAX_SHARD_BYTES = 384 * 1024     # ... and none exceeds this one
SPLITS = ("weak_train", "transfer", "test")
UNASSIGNED = "unassigned"        # a sample in none of the run's splits (or no splits.json)
_WORD = re.compile(r"\w+")

CSS = """
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; background: #f4f5f7; color: #1d1f23; }
header { position: sticky; top: 0; z-index: 1; background: #fff; border-bottom: 1px solid #d8dbe0; padding: 8px 16px; display: flex; flex-wrap: wrap; gap: 8px 12px; align-items: center; }
header h1 { font-size: 17px; margin: 0 12px 0 0; }
header input[type=search] { width: 280px; padding: 4px 6px; }
#count { color: #666; margin-left: auto; }
#pager, #nav { display: flex; gap: 4px; align-items: center; }
#pager input { width: 5em; }
body.one #pager, body:not(.one) #nav { display: none; }
#status { flex-basis: 100%; color: #555; font-size: 13px; }
#status:empty { display: none; }
#status.err { color: #8a1c15; font-weight: 600; }
main { padding: 12px 16px; }
main.loading { opacity: .45; }
article { background: #fff; border: 1px solid #d8dbe0; border-radius: 6px; padding: 12px 14px; margin: 0 0 14px; }
.meta { display: flex; flex-wrap: wrap; gap: 6px 14px; align-items: baseline; }
.sid { font-weight: 600; font-family: ui-monospace, monospace; }
a.sid { color: inherit; }
.tag { background: #eef0f3; border-radius: 3px; padding: 0 6px; font-size: 12px; }
.gold { background: #fff4cf; }
.err { background: #fde2e1; color: #8a1c15; }
.ok { color: #156c2f; } .bad { color: #b3261e; font-weight: 600; } .none { color: #777; }
.sample { white-space: pre-wrap; overflow-wrap: anywhere; background: #fafbfc; border-left: 3px solid #9aa3af; padding: 6px 10px; margin: 8px 0; max-height: 16em; overflow: auto; }
.turns { display: grid; grid-template-columns: 1fr 1fr; gap: 8px 14px; }
.colhead { font-weight: 600; font-size: 13px; padding: 2px 8px; border-radius: 3px; }
.turn { border-radius: 4px; padding: 6px 10px; min-width: 0; align-self: start; }
.sideA { background: #e8f0fe; border-left: 3px solid #3b6fd8; }
.sideB { background: #fdeee4; border-left: 3px solid #d9782d; }
.turn .th { font-size: 12px; color: #555; margin-bottom: 3px; }
.turn .tx { white-space: pre-wrap; overflow-wrap: anywhere; }
.defends-gold { font-weight: 600; color: #156c2f; }
.preds { margin: 8px 0 0; font-size: 13px; }
.preds span { margin-right: 14px; }
.preds .why { color: #555; font-style: italic; }
details.prov { margin-top: 8px; font-size: 12px; color: #555; }
details.prov code { font-size: 12px; overflow-wrap: anywhere; }
table.rows { border-collapse: collapse; background: #fff; font-size: 13px; width: 100%; }
table.rows th, table.rows td { border: 1px solid #e1e4e8; padding: 2px 6px; text-align: left; white-space: nowrap; }
table.rows th { background: #f0f2f5; cursor: pointer; user-select: none; position: sticky; top: 0; }
table.rows th[aria-sort=ascending]::after { content: " \\25b2"; }
table.rows th[aria-sort=descending]::after { content: " \\25bc"; }
table.rows tbody tr { cursor: pointer; }
table.rows tbody tr:hover { background: #eef4ff; }
table.rows td.num { text-align: right; font-variant-numeric: tabular-nums; }
.q { border-radius: 2px; padding: 0 1px; }
.q-verified { background: #dff3e4; border-bottom: 2px solid #156c2f; }
.q-fuzzy { background: #fff4cf; border-bottom: 2px dashed #a67c00; }
.q-unverified { background: #fde2e1; border-bottom: 2px dotted #b3261e; }
.control { background: #3d2c73; color: #fff; font-weight: 600; }
"""

# Constant code: it holds no run data. It reads the data files through the three
# registration functions and builds every element with createElement/textContent.
JS = r"""
(function () {
  'use strict';
  var doc = document, root = doc.documentElement, body = doc.body, list = doc.getElementById('list');
  var DIR = list.getAttribute('data-dir'), CARDS = +list.getAttribute('data-per-page') || 50;
  var ROWS = +list.getAttribute('data-table-per-page') || 100;
  function $(id) { return doc.getElementById(id); }
  var ctl = {q: $('q'), gold: $('gold'), protocol: $('protocol'), split: $('split'), truth: $('truth'),
             weak: $('weak'), view: $('view'), sort: $('sort')};
  var countEl = $('count'), statusEl = $('status'), pageInfo = $('pageinfo'), pageNum = $('pagenum');
  var posEl = $('dpos');
  var idx = null, files = {}, terms = {}, waiting = {}, lowIds = null;
  var matches = [], page = 0, seq = 0, applySeq = 0, renders = 0, lastHash = null, speakers = {}, timer = null;
  var open = null;  // the one-debate view's route {sid, protocol, k} (null: any), or null for the list

  window.viewerIndex = function (d) { idx = d; };
  window.viewerPage = function (n, records) { files[n] = records; };
  window.viewerTerms = function (n, pairs) {  // [term, posting, ...]: a Map, so no term is an object key
    var m = new Map();
    for (var i = 0; i < pairs.length; i += 2) m.set(pairs[i], pairs[i + 1]);
    terms[n] = m;
  };

  function el(tag, cls, text) {
    var e = doc.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  // A turn's text with each <quote> styled by its grade (debate/quotes.py; grades: one per
  // quote, in order, as weak/quote_grades.jsonl recorded them; null: not graded). The
  // pattern is quotes.py's QUOTE; the text stays text (text nodes and textContent only).
  var GRADE_TITLE = {verified: 'verified: verbatim in the passage after normalisation',
                     fuzzy: 'fuzzy: a near match of the passage (weak.fuzzy_quote_threshold)',
                     unverified: 'unverified: not found in the passage'};
  function quoted(text, grades) {
    var d = el('div', 'tx');
    if (!grades || !grades.length) { d.textContent = text; return d; }
    var re = /<quote>([\s\S]*?)<\/quote>/gi, last = 0, n = 0, m;
    while ((m = re.exec(text)) !== null) {
      var g = grades[n++] || 'unverified';
      d.appendChild(doc.createTextNode(text.slice(last, m.index)));
      var q = el('span', 'q q-' + g, m[0]);
      q.title = GRADE_TITLE[g] || g;
      q.setAttribute('data-grade', g);
      d.appendChild(q);
      last = re.lastIndex;
    }
    d.appendChild(doc.createTextNode(text.slice(last)));
    return d;
  }
  function add(parent) {  // append children: strings become text nodes
    for (var i = 1; i < arguments.length; i++) {
      var c = arguments[i];
      parent.appendChild(typeof c === 'string' ? doc.createTextNode(c) : c);
    }
    return parent;
  }
  function status(text, isErr) { statusEl.textContent = text || ''; statusEl.className = isErr ? 'err' : ''; }
  function debounce() { return idx && idx.total > 20000 ? 200 : 80; }  // ms of typing pause before a search
  function pad5(n) { var s = String(n); while (s.length < 5) s = '0' + s; return s; }
  function table() { return ctl.view && ctl.view.value === 'table'; }
  function perPage() { return table() ? ROWS : CARDS; }

  // fetch() of local files is blocked under file://; a script element's src is not.
  function loadScript(name, done) {
    var s = doc.createElement('script');
    s.src = DIR + '/' + name;
    s.onload = function () { s.remove(); done(true); };
    s.onerror = function () { s.remove(); done(false); };
    doc.head.appendChild(s);
  }
  // store: files (data files pNNNNN.js) or terms (search shards tNNNNN.js)
  function loadOne(store, prefix, n, done) {
    if (store[n]) return done(true);
    var key = prefix + n;
    if (waiting[key]) return waiting[key].push(done);
    waiting[key] = [done];
    loadScript(prefix + pad5(n) + '.js', function (ok) {
      var cbs = waiting[key]; delete waiting[key];
      cbs.forEach(function (cb) { cb(ok && !!store[n]); });
    });
  }
  function loadAll(store, prefix, ns, done) {
    var left = ns.length, failed = [];
    if (!left) return done(failed);
    ns.forEach(function (n) {
      loadOne(store, prefix, n, function (ok) {
        if (!ok) failed.push(prefix + pad5(n) + '.js');
        if (--left === 0) done(failed);
      });
    });
  }
  function evict(store, keep, most) {  // bound the memory: keep at most `most` files of a kind
    var have = Object.keys(store);
    if (have.length <= most) return;
    have.forEach(function (n) { if (!keep[n]) delete store[n]; });
  }
  function missing(failed) {
    list.classList.remove('loading');
    status('Could not load ' + failed.map(function (f) { return DIR + '/' + f; }).join(', ')
           + ': keep this page next to its ' + DIR + '/ folder.', true);
  }

  // -- search: the same words and shard hash as viewer.py's words() and _shard_hash()
  var WORD = /[\p{L}\p{N}_]+/gu;
  function words(s) {
    return (s.match(WORD) || []).map(function (w) { return Array.from(w).slice(0, idx.maxTerm).join(''); });
  }
  function shardOf(t) {  // FNV-1a, 32 bits, over code points
    var h = 0x811c9dc5;
    for (var ch of t) h = Math.imul(h ^ ch.codePointAt(0), 0x01000193) >>> 0;
    return h % idx.shards;
  }
  function parseQuery(q) {
    var need = {}, tokens = q.toLowerCase().split(/\s+/).filter(Boolean).map(function (tok) {
      var ws = words(tok);
      ws.forEach(function (w) { need[shardOf(w)] = 1; });
      return {tok: tok, words: ws};
    });
    return {tokens: tokens, shards: Object.keys(need).map(Number)};
  }
  function posting(w) {  // 1 at each transcript (display position) whose text has the word
    var n = idx.total, m = new Uint8Array(n), p = terms[shardOf(w)].get(w), i, x;
    if (p === undefined) return m;
    if (typeof p === 'string') {  // a little-endian bitset, base64
      var b = atob(p);
      for (i = 0; i < n; i++) m[i] = (b.charCodeAt(i >> 3) >> (i & 7)) & 1;
    } else {  // gaps between positions
      for (i = 0, x = 0; i < p.length; i++) { x += p[i]; m[x] = 1; }
    }
    return m;
  }
  function tokenMask(t) {  // 2: the sample id is the token; 1: it starts with it or the text has its words
    var n = idx.total, ids = new Uint8Array(idx.samples.length), m = new Uint8Array(n), wm = null, i;
    for (i = 0; i < lowIds.length; i++) {
      if (lowIds[i].lastIndexOf(t.tok, 0) === 0) ids[i] = lowIds[i].length === t.tok.length ? 2 : 1;
    }
    t.words.forEach(function (w) {
      var p = posting(w);
      if (!wm) wm = p; else for (var j = 0; j < n; j++) wm[j] &= p[j];
    });
    for (i = 0; i < n; i++) m[i] = ids[idx.sample[i]] || (wm ? wm[i] : 0);
    return m;
  }

  function state() {
    var st = {};
    Object.keys(ctl).forEach(function (k) { st[k] = ctl[k] ? ctl[k].value : ''; });
    return st;
  }
  function matching(st, query) {
    var out = [], n = idx.total, i, j;
    var gold = st.gold === '' ? -1 : +st.gold, proto = st.protocol === '' ? -1 : +st.protocol;
    var split = st.split === '' ? -1 : +st.split;
    var tSpeakers = -1, tA = -1, wMode = '', wWho = -1;
    if (st.truth) { tSpeakers = +st.truth.split(':')[0]; tA = st.truth.split(':')[1] === 'A' ? 1 : 0; }
    if (st.weak) { wMode = st.weak.split(':')[0]; wWho = st.weak.split(':')[1] === '*' ? -1 : +st.weak.split(':')[1]; }
    var nSpeakers = idx.protocols.map(function (p) { return p[1].length; });
    var masks = query.tokens.map(tokenMask), exact = masks.length ? new Uint8Array(n) : null;
    for (i = 0; i < n; i++) {
      if (gold >= 0 && idx.gold[i] !== gold) continue;
      if (proto >= 0 && idx.protocol[i] !== proto) continue;
      if (split >= 0 && idx.split[idx.sample[i]] !== split) continue;
      if (tSpeakers >= 0 && (nSpeakers[idx.protocol[i]] !== tSpeakers || idx.aGold[i] !== tA)) continue;
      if (wMode) {
        var w = idx.weak[i];
        if (wWho >= 0) { if (w.charAt(wWho) !== wMode) continue; }
        else if (wMode === 'w' ? w.indexOf('w') < 0 : (w.indexOf('w') >= 0 || w.indexOf('r') < 0)) continue;
      }
      if (masks.length) {
        var ok = true, ex = 0;
        for (j = 0; j < masks.length; j++) {
          if (!masks[j][i]) { ok = false; break; }
          if (masks[j][i] === 2) ex = 1;
        }
        if (!ok) continue;
        exact[i] = ex;
      }
      out.push(i);
    }
    return order(out, st.sort, exact);
  }
  // Exact id matches first, then the sort column (a missing value last either way), then display order.
  function order(out, sort, exact) {
    var desc = sort.charAt(0) === '-', col = desc ? sort.slice(1) : sort, dir = desc ? -1 : 1;
    if (!col && !exact) return out;
    var val = new Float64Array(idx.total), absent = new Uint8Array(idx.total), j = +col.slice(1);
    out.forEach(function (i) {
      var s = idx.sample[i], c;
      if (col === 'id') val[i] = s * 1e6 + idx.protocol[i] * 1e4 + idx.k[i];  // samples are in natural order
      else if (col === 'protocol') val[i] = idx.protocol[i];
      else if (col === 'split') val[i] = idx.split[s];
      else if (col === 'gold') val[i] = idx.gold[i];
      else if (col.charAt(0) === 'w') { c = idx.weak[i].charAt(j); absent[i] = c === '-' ? 1 : 0; val[i] = c === 'w' ? 0 : 1; }
      else if (col.charAt(0) === 'p') { c = idx.p1[j][s]; absent[i] = c < 0 ? 1 : 0; val[i] = c; }
    });
    return out.sort(function (a, b) {
      return (exact ? exact[b] - exact[a] : 0) || absent[a] - absent[b] || dir * (val[a] - val[b]) || a - b;
    });
  }

  function apply(keepPage) {
    if (!idx) return;
    var st = state(), query = parseQuery(st.q), my = ++applySeq;
    var need = query.shards.filter(function (n) { return !terms[n]; });
    if (need.length) {
      status('Loading the search index\u2026');
      loadAll(terms, 't', need, function (failed) {
        if (my !== applySeq) return;  // a newer query took over
        if (failed.length) return missing(failed);
        status('');
        apply(keepPage);
      });
      return;
    }
    var keep = {};
    query.shards.forEach(function (n) { keep[n] = 1; });
    evict(terms, keep, 32);
    matches = matching(st, query);
    countEl.textContent = matches.length + ' of ' + idx.total + ' transcripts';
    show(keepPage ? page : 0);
  }

  function route(i) { return {sid: idx.samples[idx.sample[i]], protocol: idx.protocols[idx.protocol[i]][0], k: idx.k[i]}; }
  function locate(o) {  // the display position of the debate a route names (the first, where it leaves some open), or -1
    var s = idx.samples.indexOf(o.sid), pc = -1;
    if (s < 0) return -1;
    idx.protocols.forEach(function (p, c) { if (p[0] === o.protocol) pc = c; });
    if (o.protocol !== null && pc < 0) return -1;
    for (var i = 0; i < idx.total; i++) {
      if (idx.sample[i] === s && (pc < 0 || idx.protocol[i] === pc) && (o.k === null || idx.k[i] === o.k)) return i;
    }
    return -1;
  }

  function pages() { return Math.max(1, Math.ceil(matches.length / perPage())); }
  function show(p) {
    body.classList.toggle('one', !!open);
    if (open) return showOne();
    var per = perPage();
    page = Math.max(0, Math.min(p | 0, pages() - 1));
    writeHash(false);
    pageInfo.textContent = 'of ' + pages();
    pageNum.value = page + 1;
    pageNum.max = pages();
    var my = ++seq, slice = matches.slice(page * per, (page + 1) * per);
    if (table()) { status(''); list.classList.remove('loading'); return paintTable(slice); }  // the index has it all
    var need = [], keep = {};
    slice.forEach(function (i) {
      var f = Math.floor(i / idx.fileSize);
      if (!keep[f]) { keep[f] = 1; if (!files[f]) need.push(f); }
    });
    if (need.length) {
      status('Loading ' + need.length + ' data file' + (need.length > 1 ? 's' : '') + '\u2026');
      list.classList.add('loading');
    }
    loadAll(files, 'p', need, function (failed) {
      if (my !== seq) return;  // a newer request took over
      if (failed.length) return missing(failed);
      list.classList.remove('loading');
      status('');
      paint(slice);
      evict(files, keep, 24);
    });
  }
  function showOne() {
    var i = locate(open), my = ++seq, at = matches.indexOf(i);
    writeHash(false);
    $('dprev').disabled = at <= 0;
    $('dnext').disabled = at < 0 || at >= matches.length - 1;
    if (i < 0) {
      posEl.textContent = '';
      status('No debate ' + open.sid + (open.protocol !== null ? ' / ' + open.protocol : '')
             + (open.k !== null ? ' / ' + open.k : '') + ' in this run.', true);
      return paint([]);
    }
    posEl.textContent = at >= 0 ? (at + 1) + ' of ' + matches.length : 'not in the current filter';
    var f = Math.floor(i / idx.fileSize), keep = {};
    keep[f] = 1;
    loadAll(files, 'p', [f], function (failed) {
      if (my !== seq) return;
      if (failed.length) return missing(failed);
      status('');
      paint([i]);
      evict(files, keep, 24);
    });
  }
  function step(d) {  // previous/next debate in the current filter and sort
    var at = matches.indexOf(locate(open)), j = at + d;
    if (at < 0 || j < 0 || j >= matches.length) return;
    open = route(matches[j]);
    showOne();
  }
  function back() {  // to the page of the list that holds the debate
    var at = matches.indexOf(locate(open));
    open = null;
    show(at >= 0 ? Math.floor(at / perPage()) : page);
  }

  function painted(t0) {
    void list.offsetHeight;  // include style and layout in the timings
    renders++;
    root.setAttribute('data-render-ms', (performance.now() - t0).toFixed(1));
    if (renders === 1) {
      root.setAttribute('data-first-render-ms', performance.now().toFixed(1));
      if (performance.memory) root.setAttribute('data-js-heap-bytes', performance.memory.usedJSHeapSize);
    }
    root.setAttribute('data-renders', renders);
  }
  function paint(slice) {
    var t0 = performance.now(), frag = doc.createDocumentFragment();
    slice.forEach(function (i) {
      frag.appendChild(article(i, files[Math.floor(i / idx.fileSize)][i % idx.fileSize]));
    });
    if (!slice.length && !open) frag.appendChild(el('p', 'empty', idx.total ? 'No transcripts match these filters.' : 'No debates.'));
    list.replaceChildren(frag);
    if (renders) window.scrollTo(0, 0);
    painted(t0);
  }
  function link(i) { return '#' + hashOf(route(i), page); }
  function splitName(i) { return idx.splits[idx.split[idx.sample[i]]]; }

  var COLS = null;  // the table's columns: [sort key, heading]
  function columns() {
    if (COLS) return COLS;
    COLS = [['id', 'id'], ['id', 'k']];
    if (idx.protocols.length > 1) COLS.push(['protocol', 'protocol']);
    if (idx.haveSplits) COLS.push(['split', 'split']);
    COLS.push(['gold', 'gold']);
    idx.labellers.forEach(function (name, j) { COLS.push(['w' + j, name], ['p' + j, 'P(1)']); });
    return COLS;
  }
  function paintTable(slice) {
    var t0 = performance.now(), tbl = el('table', 'rows'), head = el('tr'), tb = el('tbody'), cur = ctl.sort.value;
    columns().forEach(function (c) {
      var th = el('th', null, c[1]);
      th.setAttribute('data-sort', c[0]);
      th.title = 'sort by ' + c[1] + (c[0].charAt(0) === 'p' ? ' (' + idx.labellers[+c[0].slice(1)] + ')' : '');
      if (cur === c[0]) th.setAttribute('aria-sort', 'ascending');
      else if (cur === '-' + c[0]) th.setAttribute('aria-sort', 'descending');
      head.appendChild(th);
    });
    tbl.appendChild(add(el('thead'), head));
    slice.forEach(function (i) {
      var o = route(i), s = idx.sample[i], tr = el('tr'), a = el('a', 'sid', o.sid);
      tr.setAttribute('data-i', i);
      a.href = link(i);
      add(tr, add(el('td'), a), el('td', 'num', o.k));
      if (idx.protocols.length > 1) tr.appendChild(el('td', null, o.protocol));
      if (idx.haveSplits) tr.appendChild(el('td', null, idx.splits[idx.split[s]]));
      tr.appendChild(el('td', 'num', idx.gold[i]));
      idx.labellers.forEach(function (name, j) {
        var c = idx.weak[i].charAt(j), p = idx.p1[j][s];
        tr.appendChild(c === '-' ? el('td', 'none', '\u2013') : el('td', c === 'r' ? 'ok' : 'bad', c === 'r' ? '\u2713 right' : '\u2717 wrong'));
        tr.appendChild(el('td', 'num', p < 0 ? '\u2013' : (p / 1000).toFixed(3)));
      });
      tb.appendChild(tr);
    });
    tbl.appendChild(tb);
    var frag = doc.createDocumentFragment();
    frag.appendChild(tbl);
    if (!slice.length) frag.appendChild(el('p', 'empty', idx.total ? 'No transcripts match these filters.' : 'No debates.'));
    list.replaceChildren(frag);
    if (renders) window.scrollTo(0, 0);
    painted(t0);
  }

  function why(i) {  // why a labeller has no prediction for this transcript's sample
    var sp = splitName(i);
    if (!idx.haveSplits) return "the run has no splits.json, so this sample's split is unknown";
    if (sp === 'weak_train') return 'weak labellers predict on transfer and test only; this is a weak_train sample';
    if (sp === 'unassigned') return "this sample is in none of the run's splits (splits.json)";
    return 'its labeller.json has no prediction for this ' + sp + ' sample';
  }
  function article(i, r) {
    var who = speakers[r.protocol] || ['Debater A', 'Debater B'];
    var a = el('article', 'debate'), sid = el('a', 'sid', r.sid);
    a.setAttribute('data-i', i);
    a.setAttribute('data-protocol', r.protocol);
    sid.href = link(i);
    sid.title = 'link to this debate';
    var meta = add(el('div', 'meta'), sid, el('span', 'tag', r.task), el('span', 'tag', r.protocol + ' ' + r.k));
    if (idx.haveSplits) meta.appendChild(el('span', 'tag split', splitName(i)));
    add(meta, el('span', 'tag gold', 'gold ' + r.gold + ': ' + r.positions[r.gold]));
    if (r.error) meta.appendChild(el('span', 'tag err', 'error: ' + r.error));
    if (r.prov.control || r.prov.deceptive !== null) {  // calibration, never a method's debate
      meta.appendChild(el('span', 'tag control', '[CONTROL ' + (r.prov.control || 'mislead') + ']'
                          + (r.prov.deceptive ? (r.prov.control ? ' deceptive' : ' told to mislead') : '')));
    }
    if (r.quotes) {
      add(meta, el('span', 'tag quotes', 'quotes: ' + r.quotes.verified + ' verified \u00b7 ' + r.quotes.fuzzy
                   + ' fuzzy \u00b7 ' + r.quotes.unverified + ' unverified'));
    }
    a.appendChild(meta);
    a.appendChild(el('div', 'sample', r.text));
    var grid = el('div', 'turns');
    who.forEach(function (name, c) {
      var side = c === 0 ? 'A' : 'B';
      var h = el('div', 'colhead side' + side, name + ' \u00b7 ' + r.positions[side === 'A' ? r.aLabel : 1 - r.aLabel]);
      h.style.gridRow = '1'; h.style.gridColumn = String(c + 1);
      grid.appendChild(h);
    });
    r.turns.forEach(function (t) {  // [index, side, role, label, text, tokens, finish, row, quote grades]
      var d = el('div', 'turn side' + t[1]);
      d.style.gridRow = String(t[7] + 1); d.style.gridColumn = t[1] === 'A' ? '1' : '2';
      var th = add(el('div', 'th'), 'Turn ' + (t[0] + 1) + ' \u00b7 ' + t[2] + ' \u00b7 argues ' + t[3] + ': ',
                   el('b', null, r.positions[t[3]]));
      if (t[3] === r.gold) add(th, ' ', el('span', 'defends-gold', '(gold)'));
      add(th, ' \u00b7 ' + t[5] + ' tok \u00b7 ' + t[6]);
      add(d, th, quoted(t[4], t[8]));
      grid.appendChild(d);
    });
    a.appendChild(grid);
    if (idx.labellers.length) {
      var preds = el('div', 'preds', 'Weak predictions: '), have = {};
      r.preds.forEach(function (p) {  // [labeller, P(1)]; a tie reads as 1 (w2s_base/decision.py)
        var right = (p[1] >= 0.5 ? 1 : 0) === r.gold;
        have[p[0]] = 1;
        add(preds, add(el('span', null, idx.labellers[p[0]] + ': P(1)=' + p[1].toFixed(3) + ' \u2192 ' + (p[1] >= 0.5 ? 1 : 0) + ' '),
                       el('b', right ? 'ok' : 'bad', right ? 'right' : 'wrong')));
      });
      var absent = idx.labellers.filter(function (name, j) { return !have[j]; });
      if (absent.length) {
        preds.appendChild(el('span', 'why', (absent.length === idx.labellers.length ? 'no weak prediction'
                                             : absent.join(', ') + ': no prediction') + ' \u2014 ' + why(i)));
      }
      a.appendChild(preds);
    }
    var v = r.prov, prov = el('details', 'prov');
    add(prov, el('summary', null, 'provenance'), 'model ', el('code', null, v.model), ' \u00b7 backend ',
        el('code', null, v.backend), ' \u00b7 prompts ', el('code', null, v.prompts), ' \u00b7 seed ' + v.seed
        + ' \u00b7 debate ' + r.k + ' \u00b7 protocol ' + r.protocol + '/' + v.turns + ' turns \u00b7 sampling ',
        el('code', null, v.sampling), ' \u00b7 key ', el('code', null, v.key),
        ' \u00b7 ' + v.seconds.toFixed(1) + 's' + (v.control ? ' \u00b7 control ' + v.control : '')
        + (v.deceptive ? (v.control ? ' \u00b7 DECEPTIVE: the confident side argues the wrong label'
                        : ' \u00b7 MISLEAD (debate.mislead): the debater arguing the wrong label was told to mislead')
           : ''));
    a.appendChild(prov);
    return a;
  }

  // The view lives in the URL's fragment: the debate's route (sample/<id>/<protocol>/<k>),
  // the filters, sort, view and page. Bookmarkable, and kept on reload.
  function hashOf(o, pg) {
    var st = state(), parts = [];
    if (o) parts.push('sample/' + encodeURIComponent(o.sid) + '/' + encodeURIComponent(o.protocol) + '/' + o.k);
    Object.keys(st).forEach(function (k) { if (st[k]) parts.push(k + '=' + encodeURIComponent(st[k])); });
    if (pg) parts.push('page=' + (pg + 1));
    return parts.join('&');
  }
  function writeHash(push) {
    lastHash = hashOf(open && open.protocol !== null && open.k !== null ? open : null, page);
    if (open && (open.protocol === null || open.k === null)) {  // a short link: write the route it resolved to
      var i = locate(open);
      if (i >= 0) { open = route(i); lastHash = hashOf(open, page); }
      else lastHash = location.hash.replace(/^#/, '');
    }
    if (location.hash.replace(/^#/, '') === lastHash) return;
    if (push) location.hash = lastHash; else location.replace('#' + lastHash);
  }
  function readHash() {
    var h = location.hash.replace(/^#/, ''), kv = {};
    if (h === lastHash) return false;
    lastHash = h;
    open = null;
    h.split('&').forEach(function (p) {
      try {
        if (p.lastIndexOf('sample/', 0) === 0) {  // sample/<id>[/<k>] or sample/<id>/<protocol>/<k>
          var r = p.split('/').slice(1).map(decodeURIComponent);
          open = {sid: r[0], protocol: r.length > 2 ? r[1] : null, k: r.length > 1 ? parseInt(r[r.length - 1], 10) : null};
          if (open.k !== null && isNaN(open.k)) open.k = -1;
          return;
        }
        var j = p.indexOf('=');
        if (j > 0) kv[p.slice(0, j)] = decodeURIComponent(p.slice(j + 1));
      } catch (e) { /* a malformed part: ignored */ }
    });
    Object.keys(ctl).forEach(function (k) {
      if (!ctl[k]) return;
      ctl[k].value = kv[k] || '';
      if (ctl[k].value !== (kv[k] || '')) ctl[k].value = '';  // an option this run does not have
    });
    page = Math.max(0, (parseInt(kv.page, 10) || 1) - 1);
    return true;
  }

  Object.keys(ctl).forEach(function (k) {
    var c = ctl[k];
    if (!c) return;
    if (k === 'q') {
      c.addEventListener('input', function () {
        clearTimeout(timer);
        timer = setTimeout(function () { apply(false); }, debounce());
      });
    } else {
      c.addEventListener('change', function () { apply(false); });
    }
  });
  $('first').addEventListener('click', function () { show(0); });
  $('prev').addEventListener('click', function () { show(page - 1); });
  $('next').addEventListener('click', function () { show(page + 1); });
  $('last').addEventListener('click', function () { show(pages() - 1); });
  $('dprev').addEventListener('click', function () { step(-1); });
  $('dnext').addEventListener('click', function () { step(1); });
  $('back').addEventListener('click', back);
  pageNum.addEventListener('change', function () { show((parseInt(pageNum.value, 10) || 1) - 1); });
  list.addEventListener('click', function (e) {
    var th = e.target.closest('th[data-sort]');
    if (th && ctl.sort) {  // a column heading: sort by it, again for the other direction
      var col = th.getAttribute('data-sort');
      ctl.sort.value = ctl.sort.value === col ? '-' + col : col;
      return apply(false);
    }
    var tr = e.target.closest('tr[data-i]');
    if (tr && !e.target.closest('a')) location.hash = link(+tr.getAttribute('data-i')).slice(1);
  });
  doc.addEventListener('keydown', function (e) {
    var tag = e.target && e.target.tagName;
    if (!idx || e.ctrlKey || e.metaKey || e.altKey || tag === 'INPUT' || tag === 'SELECT' || tag === 'TEXTAREA') return;
    var k = e.key, next = k === 'j' || k === 'ArrowRight', prev = k === 'k' || k === 'ArrowLeft';
    if (open) {
      if (next) step(1); else if (prev) step(-1); else if (k === 'Escape' || k === 'u') back(); else return;
    } else {
      if (next) show(page + 1); else if (prev) show(page - 1); else return;
    }
    e.preventDefault();
  });
  window.addEventListener('hashchange', function () { if (idx && readHash()) apply(true); });

  readHash();
  countEl.textContent = 'loading\u2026';
  loadScript('index.js', function (ok) {
    if (!ok || !idx) {
      countEl.textContent = '';
      status('Could not load ' + DIR + '/index.js: keep this page next to its ' + DIR + '/ folder.', true);
      return;
    }
    idx.protocols.forEach(function (p) { speakers[p[0]] = p[1]; });
    lowIds = idx.samples.map(function (s) { return s.toLowerCase(); });
    root.setAttribute('data-debounce-ms', debounce());
    apply(true);
  });
})();
"""


def _e(x: object) -> str:
    return escape(str(x), quote=True)


def _js(value: object) -> str:
    """JSON as a JavaScript literal that is safe anywhere: every "<" (the only way to
    start "</script>" or "<!--") and the two JS-hostile line separators are escaped."""
    return (json.dumps(value, ensure_ascii=False, separators=(",", ":"))
            .replace("<", "\\u003c").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def natural_key(text: str) -> tuple:
    """Sort key reading digit runs as numbers: demo-2 before demo-10 (the text itself breaks
    ties such as 007 and 7). re.split with a group alternates text and digits, so the
    parts compare str with str and int with int."""
    parts = re.split(r"(\d+)", text)
    return tuple(int(p) if i % 2 else p.casefold() for i, p in enumerate(parts)), text


def words(text: str) -> set[str]:
    """The search index's words of a text (the page splits a query the same way)."""
    return {w[:MAX_TERM] for w in _WORD.findall(text.lower())}


def _shard_hash(term: str) -> int:
    """FNV-1a, 32 bits, over code points: the page computes the same to find a term's shard."""
    h = 0x811C9DC5
    for ch in term:
        h = ((h ^ ord(ch)) * 0x01000193) & 0xFFFFFFFF
    return h


def _rows(turns: list[Turn]) -> list[int]:
    """Grid row per turn: a side's turn goes below its own previous turn and never
    above the turn before it, so the reply to a turn sits beside or below it and
    reading order down the page is turn order (A,B,A -> rows 1,1,2)."""
    last = {"A": 0, "B": 0}
    rows, prev = [], 1
    for t in turns:
        prev = max(last[t.side] + 1, prev)
        last[t.side] = prev
        rows.append(prev)
    return rows


def display_order(transcripts: list[Transcript]) -> list[Transcript]:
    """Protocol (in w2s_base.protocols order) first, so a protocol filter reads contiguous
    data files; then sample id in natural order, debate index."""
    order = {p: i for i, p in enumerate(PROTOCOLS)}
    return sorted(transcripts, key=lambda t: (order.get(t.protocol, len(order)), t.protocol,
                                              natural_key(t.sample_id), t.debate_index, t.key))


def _record(t: Transcript, weak: list[tuple[int, dict[str, float]]],
            grades: list[list[str]] | None = None) -> dict:
    """One transcript in full, as the page renders it; `grades`: its quotes' grades per
    turn (weak/quote_grades.jsonl), None where they were not graded."""
    preds = [[j, round(p[t.sample_id], 6)] for j, p in weak if t.sample_id in p]
    if grades is not None and len(grades) != len(t.turns):
        grades = None  # recorded for another text of this key: shown ungraded, never misgraded
    return {
        "sid": t.sample_id, "task": t.task, "protocol": t.protocol, "k": t.debate_index,
        "gold": t.gold_label, "aLabel": t.a_label, "positions": list(t.positions),
        "text": t.sample_text, "error": t.error,
        "turns": [[x.index, x.side, x.role, x.position_label, x.text, x.completion_tokens, x.finish_reason, row,
                   grades[i] if grades is not None else None]
                  for i, (x, row) in enumerate(zip(t.turns, _rows(t.turns)))],
        "quotes": (GradeCounts.of([g for turn in grades for g in turn]).model_dump()
                   if grades is not None else None),
        "preds": preds,
        "prov": {"model": t.model, "backend": t.backend, "prompts": f"{t.prompt_set}@{t.prompt_hash}",
                 "seed": t.seed, "turns": t.num_turns, "sampling": json.dumps(t.sampling.model_dump()),
                 "key": t.key, "seconds": t.seconds, "control": t.control,
                 "deceptive": t.deceptive},
    }


def search_shards(ts: list[Transcript]) -> list[list]:
    """The full-text index of transcripts in display order: per shard, [term, posting, ...].
    A posting is the gaps between the display positions holding the term, or, where that
    is longer, a little-endian bitset over all positions in base64 (at most total/6 bytes)."""
    post: dict[str, array] = {}
    of_sample: dict[str, set[str]] = {}
    for i, t in enumerate(ts):
        ws = of_sample.get(t.sample_id)
        if ws is None:
            ws = of_sample[t.sample_id] = words(t.sample_text)
        for w in ws.union(*(words(x.text) for x in t.turns)):
            a = post.get(w)
            if a is None:
                a = post[w] = array("l")
            a.append(i)
    n = len(ts)
    bitset_bytes = 4 * -(-(-(-n // 8)) // 3)  # base64 of ceil(n / 8) bytes
    sized = []  # (hash, term, ids, bytes in the shard, as a bitset)
    for w, a in post.items():
        ids = np.frombuffer(a, dtype=np.int64) if a.itemsize == 8 else np.array(a, dtype=np.int64)
        gaps = np.diff(ids, prepend=0)
        list_bytes = int((np.floor(np.log10(np.maximum(gaps, 1))) + 2).sum()) + 1  # digits and commas
        bits = bitset_bytes + 2 < list_bytes
        sized.append((_shard_hash(w), w, ids, (bitset_bytes + 2 if bits else list_bytes) + len(_js(w)) + 2, bits))
    total = sum(s[3] for s in sized)
    shards = max(1, -(-total // SHARD_BYTES))
    while True:  # more shards until the fullest is under the limit (one term never is over it below ~2.3M transcripts)
        load = [0] * shards
        for s in sized:
            load[s[0] % shards] += s[3]
        if max(load) <= MAX_SHARD_BYTES or shards >= len(sized):
            break
        shards = shards * 5 // 4 + 1
    out: list[list] = [[] for _ in range(shards)]
    for h, w, ids, _, bits in sorted(sized, key=lambda s: s[1]):
        if bits:
            mask = np.zeros(n, dtype=bool)
            mask[ids] = True
            posting = base64.b64encode(np.packbits(mask, bitorder="little").tobytes()).decode("ascii")
        else:
            posting = np.diff(ids, prepend=0).tolist()
        out[h % shards] += [w, posting]
    return out


def _index(ts: list[Transcript], labellers: list[str], weak: list[tuple[int, dict[str, float]]],
           splits: dict[str, str], shards: int, file_size: int) -> dict:
    """The filter and sort index: one compact column per transcript field (an entry per
    transcript in display order), one per sample field (an entry per sample, in natural order)."""
    protocols = list(dict.fromkeys(t.protocol for t in ts))
    pcode = {p: i for i, p in enumerate(protocols)}
    samples = sorted({t.sample_id for t in ts}, key=natural_key)
    scode = {s: i for i, s in enumerate(samples)}
    split_names = [*SPLITS, UNASSIGNED]
    col: dict[str, list] = {"sample": [], "protocol": [], "k": [], "gold": [], "aGold": [], "weak": []}
    for t in ts:
        col["sample"].append(scode[t.sample_id])
        col["protocol"].append(pcode[t.protocol])
        col["k"].append(t.debate_index)
        col["gold"].append(t.gold_label)
        col["aGold"].append(int(t.a_label == t.gold_label))  # A (or the consultant) argued the gold label
        # one character per labeller: r(ight), w(rong), - (no prediction for this sample)
        col["weak"].append("".join("-" if t.sample_id not in p else "r" if predicted_label_tie_as_1(p[t.sample_id]) == t.gold_label
                                   else "w" for _, p in weak))
    return {"version": INDEX_VERSION, "total": len(ts), "fileSize": file_size,
            "files": -(-len(ts) // file_size), "shards": shards, "maxTerm": MAX_TERM,
            "protocols": [[p, list(protocol_spec(p).speakers)] for p in protocols],
            "labellers": labellers, "samples": samples, "haveSplits": bool(splits), "splits": split_names,
            "split": [split_names.index(splits.get(s, UNASSIGNED)) for s in samples],
            # P(label=1) per labeller and sample, in thousandths; -1: no prediction
            "p1": [[round(p[s] * 1000) if s in p else -1 for s in samples] for _, p in weak], **col}


def _options(first: str, options: list[tuple[object, str]], id_: str) -> str:
    return (f'<select id="{id_}"><option value="">{first}</option>'
            + "".join(f'<option value="{_e(v)}">{_e(label)}</option>' for v, label in options) + "</select>")


def _controls(ts: list[Transcript], labellers: list[str], splits: dict[str, str]) -> str:
    """The controls. Option values are codes into the index; names are escaped text."""
    golds = sorted({t.gold_label for t in ts})
    html = ('<input type="search" id="q" placeholder="search words, or a sample id" '
            'title="each word must occur in the debate (sample or turns); a sample id matches exactly or by prefix">'
            + _options("any gold", [(g, f"gold {g}") for g in golds], "gold"))
    protocols = list(dict.fromkeys(t.protocol for t in ts))
    if len(protocols) > 1:
        html += _options("any protocol", list(enumerate(protocols)), "protocol")
    if splits:
        present = {splits.get(t.sample_id, UNASSIGNED) for t in ts}
        html += _options("any split", [(i, s) for i, s in enumerate([*SPLITS, UNASSIGNED]) if s in present], "split")
    # Who argued the truth: value "<number of speakers>:<side that argued the gold label>".
    n_speakers = {len(protocol_spec(p).speakers) for p in protocols}
    truth = []
    if 2 in n_speakers:
        truth += [("2:A", "A argued gold"), ("2:B", "B argued gold")]
    if 1 in n_speakers:
        truth += [("1:A", "consultant argued gold"), ("1:B", "consultant argued against gold")]
    if truth:
        html += _options("any side", truth, "truth")
    if labellers:
        opts = [("w:*", "some labeller wrong"), ("r:*", "every labeller right")]
        if len(labellers) > 1:  # per labeller only when there is more than one to blame
            for i, n in enumerate(labellers):
                opts += [(f"w:{i}", f"{n} wrong"), (f"r:{i}", f"{n} right")]
        html += _options("any weak prediction", opts, "weak")
    # Sort: every column of the table, both ways (its headings pick these too).
    sorts = [("id", "id"), ("-id", "id, descending")]
    if len(protocols) > 1:
        sorts += [("protocol", "protocol"), ("-protocol", "protocol, descending")]
    if splits:
        sorts += [("split", "split"), ("-split", "split, descending")]
    sorts += [("gold", "gold"), ("-gold", "gold, descending")]
    for i, n in enumerate(labellers):
        sorts += [(f"w{i}", f"{n}: wrong first"), (f"-w{i}", f"{n}: right first"),
                  (f"p{i}", f"{n}: P(1) low first"), (f"-p{i}", f"{n}: P(1) high first")]
    html += _options("protocol, id order", sorts, "sort")
    html += '<select id="view"><option value="">cards</option><option value="table">table</option></select>'
    return html


def render_viewer(transcripts: list[Transcript], weak_preds: dict[str, dict[str, float]] | None = None,
                  title: str = "Debates", data_dir: str = "debates", file_size: int = FILE_SIZE,
                  per_page: int = PER_PAGE, splits: dict[str, str] | None = None,
                  quote_grades: dict[str, list[list[str]]] | None = None) -> Iterator[tuple[str, str]]:
    """The viewer's files as (path relative to the page's folder, text): the page first
    ("<data_dir>.html"), then data_dir/index.js, the search shards data_dir/tNNNNN.js and
    one data_dir/pNNNNN.js per `file_size` transcripts, in display order. `splits` is
    {sample_id: weak_train | transfer | test} (read_split_of); `quote_grades` {transcript
    key: its quotes' grades per turn} (debate/quotes.py read_quote_grades)."""
    grades = quote_grades or {}
    ts = display_order(transcripts)
    labellers = list(weak_preds or {})
    weak = [(i, (weak_preds or {})[n]) for i, n in enumerate(labellers)]
    splits = splits or {}
    shards = search_shards(ts)
    index = _index(ts, labellers, weak, splits, len(shards), file_size)
    yield f"{data_dir}.html", (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>"
        f"<header><h1>{_e(title)}</h1>{_controls(ts, labellers, splits)}"
        '<span id="count"></span><span id="pager"><button id="first" title="first page">&laquo;</button>'
        '<button id="prev" title="previous page (k, &larr;)">&lsaquo; prev</button> page '
        '<input type="number" id="pagenum" min="1" value="1"> '
        '<span id="pageinfo"></span><button id="next" title="next page (j, &rarr;)">next &rsaquo;</button>'
        '<button id="last" title="last page">&raquo;</button></span>'
        '<span id="nav"><button id="back" title="back to the list (Esc)">&uarr; list</button>'
        '<button id="dprev" title="previous debate (k, &larr;)">&lsaquo; prev</button> '
        '<span id="dpos"></span> <button id="dnext" title="next debate (j, &rarr;)">next &rsaquo;</button></span>'
        '<div id="status"></div></header>'
        f'<main id="list" data-dir="{_e(quote(data_dir))}" data-per-page="{int(per_page)}" '
        f'data-table-per-page="{TABLE_PER_PAGE}"></main>'
        f"<script>{JS}</script></body></html>\n"
    )
    yield f"{data_dir}/index.js", f"viewerIndex({_js(index)});\n"
    for n, pairs in enumerate(shards):
        yield f"{data_dir}/t{n:05d}.js", f"viewerTerms({n}, {_js(pairs)});\n"
    for n, start in enumerate(range(0, len(ts), file_size)):
        records = [_record(t, weak, grades.get(t.key)) for t in ts[start:start + file_size]]
        yield f"{data_dir}/p{n:05d}.js", f"viewerPage({n}, {_js(records)});\n"


def load_weak_preds(layout: RunLayout) -> dict[str, dict[str, float]]:
    """{labeller: {sample_id: P(label=1)}} over transfer and test, from each
    labeller's labeller.json (written by the weak stage)."""
    out: dict[str, dict[str, float]] = {}
    for f in layout.labeller_jsons():
        try:
            lab = LabellerResult.model_validate_json(f.read_text())
        except ValueError:
            continue  # a torn file from a killed run: the stage rewrites it
        out[lab.name] = {**lab.transfer_p1, **lab.test_p1}
    return out


def load_splits(layout: RunLayout) -> dict[str, str]:
    """{sample_id: split} from the run's splits.json; {} where there is none yet (a run
    stopped after its debates still has a viewer, which then says the split is unknown)."""
    from w2s_run.report import ReportError
    from w2s_run.report.inspect_export import read_split_of
    try:
        return read_split_of(layout)
    except ReportError:
        return {}


_OWN = re.compile(r"([pt]\d{5,}|index|search)\.js")


def data_dir_of(page: Path) -> Path:
    """The folder of a page's data files: debates.html -> debates/."""
    return page.parent / (page.stem if page.suffix else page.name + "_files")


def write_viewer(layout: RunLayout, out: Path | None = None) -> Path:
    """Write the run's debates.html (or `out`) and its data folder (debates/) for its
    successful debates; returns the page."""
    ts = [t for t in load_transcripts(layout.transcripts).values() if t.ok]
    out = Path(out) if out is not None else layout.viewer
    data = data_dir_of(out)
    data.mkdir(parents=True, exist_ok=True)
    written = set()
    page_text = None
    # real debates told to mislead (debate.mislead) make the page a control's: said in its title
    control = " [CONTROL: debate.mislead]" if any(t.control is None and t.deceptive is not None for t in ts) else ""
    for rel, text in render_viewer(ts, load_weak_preds(layout) or None, title=f"Debates: {layout.root.name}{control}",
                                   data_dir=data.name, splits=load_splits(layout),
                                   quote_grades=read_quote_grades(layout.quote_grades)):
        if rel.endswith(".html"):
            page_text = text  # written last: the page never points at missing data
            continue
        path = data / Path(rel).name
        save_artifact(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
        written.add(path.name)
    for stale in data.iterdir():  # data files of an earlier, larger run (or an older viewer's search.js)
        if _OWN.fullmatch(stale.name) and stale.name not in written:
            stale.unlink()
    save_artifact(out, lambda tmp: tmp.write_text(page_text, encoding="utf-8"))
    return out
