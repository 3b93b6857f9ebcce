"""A static, serverless HTML viewer for debate transcripts that scales to the paper's
~60,000 transcripts.

It is opened from disk (file://), attached to a report or archived next to the run; it
loads nothing from the network. Chromium blocks fetch() of local files, so the data
are JavaScript files loaded with injected <script src> elements, each calling a
registration function:

    debates.html          the page: CSS, the constant script, the filter controls
    debates/index.js      viewerIndex({...}): one compact column per filter field
    debates/search.js     viewerSearch([...]): per sample "id + first 200 chars", lower case;
                          loaded on the first search only
    debates/p00000.js     viewerPage(0, [...]): transcripts 0-199 in display order, in full
    debates/p00001.js     ...

The page filters the index (protocol, gold label, the side that argued the gold label,
each weak labeller right/wrong, text) into a list of matching transcripts, paginates it
(50 a page), loads the data files that page needs and renders only that page.

Escaping: run text is data, never markup. In the HTML it appears only as escaped text
(title, labeller and protocol names in the controls); the one inline script is constant.
In the data files everything is JSON-encoded with every "<" written as \\u003c, so no data
file can contain "</script>" or "<!--", and the page builds the DOM with textContent and
createElement only (never innerHTML).
"""
from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from html import escape
from pathlib import Path
from urllib.parse import quote

from w2s_base.decision import predicted_label_tie_as_1
from w2s_base.runfolder.layout import RunLayout
from w2s_base.protocols import PROTOCOLS
from w2s_base.protocols import protocol as protocol_spec
from debate.engine import load_transcripts
from debate.transcript import Transcript, Turn
from weak.labels import LabellerResult

FILE_SIZE = 200     # transcripts per data file
PER_PAGE = 50       # transcripts rendered per page of results
SEARCH_CHARS = 200  # sample text kept in the search index
INDEX_VERSION = 1

CSS = """
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; background: #f4f5f7; color: #1d1f23; }
header { position: sticky; top: 0; z-index: 1; background: #fff; border-bottom: 1px solid #d8dbe0; padding: 8px 16px; display: flex; flex-wrap: wrap; gap: 8px 12px; align-items: center; }
header h1 { font-size: 17px; margin: 0 12px 0 0; }
header input[type=search] { width: 280px; padding: 4px 6px; }
#count { color: #666; margin-left: auto; }
#pager { display: flex; gap: 4px; align-items: center; }
#pager input { width: 5em; }
#status { flex-basis: 100%; color: #555; font-size: 13px; }
#status:empty { display: none; }
#status.err { color: #8a1c15; font-weight: 600; }
main { padding: 12px 16px; }
main.loading { opacity: .45; }
article { background: #fff; border: 1px solid #d8dbe0; border-radius: 6px; padding: 12px 14px; margin: 0 0 14px; }
.meta { display: flex; flex-wrap: wrap; gap: 6px 14px; align-items: baseline; }
.sid { font-weight: 600; font-family: ui-monospace, monospace; }
.tag { background: #eef0f3; border-radius: 3px; padding: 0 6px; font-size: 12px; }
.gold { background: #fff4cf; }
.err { background: #fde2e1; color: #8a1c15; }
.ok { color: #156c2f; } .bad { color: #b3261e; font-weight: 600; }
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
details.prov { margin-top: 8px; font-size: 12px; color: #555; }
details.prov code { font-size: 12px; overflow-wrap: anywhere; }
"""

# Constant code: it holds no run data. It reads the data files through the three
# registration functions and builds every element with createElement/textContent.
JS = r"""
(function () {
  'use strict';
  var doc = document, root = doc.documentElement, list = doc.getElementById('list');
  var DIR = list.getAttribute('data-dir'), PER_PAGE = +list.getAttribute('data-per-page') || 50;
  function $(id) { return doc.getElementById(id); }
  var ctl = {q: $('q'), gold: $('gold'), protocol: $('protocol'), truth: $('truth'), weak: $('weak')};
  var countEl = $('count'), statusEl = $('status'), pageInfo = $('pageinfo'), pageNum = $('pagenum');
  var idx = null, search = null, searchLoading = false, files = {}, waiting = {};
  var matches = [], page = 0, seq = 0, renders = 0, lastHash = null, speakers = {}, timer = null;

  window.viewerIndex = function (d) { idx = d; };
  window.viewerSearch = function (d) { search = d; };
  window.viewerPage = function (n, records) { files[n] = records; };

  function el(tag, cls, text) {
    var e = doc.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
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

  // fetch() of local files is blocked under file://; a script element's src is not.
  function loadScript(name, done) {
    var s = doc.createElement('script');
    s.src = DIR + '/' + name;
    s.onload = function () { s.remove(); done(true); };
    s.onerror = function () { s.remove(); done(false); };
    doc.head.appendChild(s);
  }
  function loadFile(n, done) {
    if (files[n]) return done(true);
    if (waiting[n]) return waiting[n].push(done);
    waiting[n] = [done];
    loadScript('p' + pad5(n) + '.js', function (ok) {
      var cbs = waiting[n]; delete waiting[n];
      cbs.forEach(function (cb) { cb(ok && !!files[n]); });
    });
  }
  function loadFiles(ns, done) {
    var left = ns.length, failed = [];
    if (!left) return done(failed);
    ns.forEach(function (n) {
      loadFile(n, function (ok) { if (!ok) failed.push(n); if (--left === 0) done(failed); });
    });
  }
  function evict(keep) {  // bound the memory: keep at most 24 data files loaded
    var have = Object.keys(files);
    if (have.length <= 24) return;
    have.forEach(function (n) { if (!keep[n]) delete files[n]; });
  }

  function state() {
    var st = {};
    Object.keys(ctl).forEach(function (k) { st[k] = ctl[k] ? ctl[k].value : ''; });
    return st;
  }
  function matching(st) {
    var out = [], n = idx.total, i;
    var q = st.q.trim().toLowerCase();
    var gold = st.gold === '' ? -1 : +st.gold, proto = st.protocol === '' ? -1 : +st.protocol;
    var tSpeakers = -1, tA = -1, wMode = '', wWho = -1;
    if (st.truth) { tSpeakers = +st.truth.split(':')[0]; tA = st.truth.split(':')[1] === 'A' ? 1 : 0; }
    if (st.weak) { wMode = st.weak.split(':')[0]; wWho = st.weak.split(':')[1] === '*' ? -1 : +st.weak.split(':')[1]; }
    var nSpeakers = idx.protocols.map(function (p) { return p[1].length; });
    var okSample = null;
    if (q) {
      okSample = new Uint8Array(idx.samples.length);
      for (i = 0; i < search.length; i++) okSample[i] = search[i].indexOf(q) >= 0 ? 1 : 0;
    }
    for (i = 0; i < n; i++) {
      if (gold >= 0 && idx.gold[i] !== gold) continue;
      if (proto >= 0 && idx.protocol[i] !== proto) continue;
      if (tSpeakers >= 0 && (nSpeakers[idx.protocol[i]] !== tSpeakers || idx.aGold[i] !== tA)) continue;
      if (wMode) {
        var w = idx.weak[i];
        if (wWho >= 0) { if (w.charAt(wWho) !== wMode) continue; }
        else if (wMode === 'w' ? w.indexOf('w') < 0 : (w.indexOf('w') >= 0 || w.indexOf('r') < 0)) continue;
      }
      if (okSample && !okSample[idx.sample[i]]) continue;
      out.push(i);
    }
    return out;
  }

  function apply(keepPage) {
    if (!idx) return;
    var st = state();
    if (st.q.trim() && !search) {
      status('Loading the search index\u2026');
      if (!searchLoading) {
        searchLoading = true;
        loadScript('search.js', function (ok) {
          searchLoading = false;
          if (ok && search) apply(keepPage);
          else status('Could not load ' + DIR + '/search.js: keep this page next to its ' + DIR + '/ folder.', true);
        });
      }
      return;
    }
    matches = matching(st);
    countEl.textContent = matches.length + ' of ' + idx.total + ' transcripts';
    show(keepPage ? page : 0);
  }

  function pages() { return Math.max(1, Math.ceil(matches.length / PER_PAGE)); }
  function show(p) {
    page = Math.max(0, Math.min(p | 0, pages() - 1));
    writeHash();
    pageInfo.textContent = 'of ' + pages();
    pageNum.value = page + 1;
    pageNum.max = pages();
    var my = ++seq, slice = matches.slice(page * PER_PAGE, (page + 1) * PER_PAGE), need = [], keep = {};
    slice.forEach(function (i) {
      var f = Math.floor(i / idx.fileSize);
      if (!keep[f]) { keep[f] = 1; if (!files[f]) need.push(f); }
    });
    if (need.length) {
      status('Loading ' + need.length + ' data file' + (need.length > 1 ? 's' : '') + '\u2026');
      list.classList.add('loading');
    }
    loadFiles(need, function (failed) {
      if (my !== seq) return;  // a newer request took over
      list.classList.remove('loading');
      if (failed.length) {
        status('Could not load ' + failed.map(function (n) { return DIR + '/p' + pad5(n) + '.js'; }).join(', ')
               + ': keep this page next to its ' + DIR + '/ folder.', true);
        return;
      }
      status('');
      paint(slice);
      evict(keep);
    });
  }

  function paint(slice) {
    var t0 = performance.now(), frag = doc.createDocumentFragment();
    slice.forEach(function (i) {
      frag.appendChild(article(i, files[Math.floor(i / idx.fileSize)][i % idx.fileSize]));
    });
    if (!slice.length) frag.appendChild(el('p', 'empty', idx.total ? 'No transcripts match these filters.' : 'No debates.'));
    list.replaceChildren(frag);
    if (renders) window.scrollTo(0, 0);
    void list.offsetHeight;  // include style and layout in the timings
    renders++;
    root.setAttribute('data-render-ms', (performance.now() - t0).toFixed(1));
    if (renders === 1) {
      root.setAttribute('data-first-render-ms', performance.now().toFixed(1));
      if (performance.memory) root.setAttribute('data-js-heap-bytes', performance.memory.usedJSHeapSize);
    }
    root.setAttribute('data-renders', renders);
  }

  function article(i, r) {
    var who = speakers[r.protocol] || ['Debater A', 'Debater B'];
    var a = el('article', 'debate');
    a.setAttribute('data-i', i);
    a.setAttribute('data-protocol', r.protocol);
    var meta = add(el('div', 'meta'), el('span', 'sid', r.sid), el('span', 'tag', r.task),
                   el('span', 'tag', r.protocol + ' ' + r.k),
                   el('span', 'tag gold', 'gold ' + r.gold + ': ' + r.positions[r.gold]));
    if (r.error) meta.appendChild(el('span', 'tag err', 'error: ' + r.error));
    a.appendChild(meta);
    a.appendChild(el('div', 'sample', r.text));
    var grid = el('div', 'turns');
    who.forEach(function (name, c) {
      var side = c === 0 ? 'A' : 'B';
      var h = el('div', 'colhead side' + side, name + ' \u00b7 ' + r.positions[side === 'A' ? r.aLabel : 1 - r.aLabel]);
      h.style.gridRow = '1'; h.style.gridColumn = String(c + 1);
      grid.appendChild(h);
    });
    r.turns.forEach(function (t) {  // [index, side, role, label, text, tokens, finish, row]
      var d = el('div', 'turn side' + t[1]);
      d.style.gridRow = String(t[7] + 1); d.style.gridColumn = t[1] === 'A' ? '1' : '2';
      var th = add(el('div', 'th'), 'Turn ' + (t[0] + 1) + ' \u00b7 ' + t[2] + ' \u00b7 argues ' + t[3] + ': ',
                   el('b', null, r.positions[t[3]]));
      if (t[3] === r.gold) add(th, ' ', el('span', 'defends-gold', '(gold)'));
      add(th, ' \u00b7 ' + t[5] + ' tok \u00b7 ' + t[6]);
      add(d, th, el('div', 'tx', t[4]));
      grid.appendChild(d);
    });
    a.appendChild(grid);
    if (idx.labellers.length) {
      var preds = el('div', 'preds', 'Weak predictions: ');
      r.preds.forEach(function (p) {  // [labeller, P(1)]; a tie reads as 1 (w2s_base/decision.py)
        var right = (p[1] >= 0.5 ? 1 : 0) === r.gold;
        add(preds, add(el('span', null, idx.labellers[p[0]] + ': P(1)=' + p[1].toFixed(3) + ' \u2192 ' + (p[1] >= 0.5 ? 1 : 0) + ' '),
                       el('b', right ? 'ok' : 'bad', right ? 'right' : 'wrong')));
      });
      if (!r.preds.length) preds.appendChild(el('span', null, 'no weak prediction for this sample'));
      a.appendChild(preds);
    }
    var v = r.prov, prov = el('details', 'prov');
    add(prov, el('summary', null, 'provenance'), 'model ', el('code', null, v.model), ' \u00b7 backend ',
        el('code', null, v.backend), ' \u00b7 prompts ', el('code', null, v.prompts), ' \u00b7 seed ' + v.seed
        + ' \u00b7 debate ' + r.k + ' \u00b7 protocol ' + r.protocol + '/' + v.turns + ' turns \u00b7 sampling ',
        el('code', null, v.sampling), ' \u00b7 key ', el('code', null, v.key),
        ' \u00b7 ' + v.seconds.toFixed(1) + 's' + (v.control ? ' \u00b7 control ' + v.control : ''));
    a.appendChild(prov);
    return a;
  }

  // The filters and the page live in the URL's fragment: bookmarkable, and kept on reload.
  function writeHash() {
    var st = state(), parts = [];
    Object.keys(st).forEach(function (k) { if (st[k]) parts.push(k + '=' + encodeURIComponent(st[k])); });
    if (page) parts.push('page=' + (page + 1));
    lastHash = parts.join('&');
    if (location.hash.replace(/^#/, '') !== lastHash) location.replace('#' + lastHash);
  }
  function readHash() {
    var h = location.hash.replace(/^#/, ''), kv = {};
    if (h === lastHash) return false;
    lastHash = h;
    h.split('&').forEach(function (p) {
      var j = p.indexOf('=');
      if (j > 0) { try { kv[p.slice(0, j)] = decodeURIComponent(p.slice(j + 1)); } catch (e) { /* ignore */ } }
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
  pageNum.addEventListener('change', function () { show((parseInt(pageNum.value, 10) || 1) - 1); });
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
    data files; then sample, debate index."""
    order = {p: i for i, p in enumerate(PROTOCOLS)}
    return sorted(transcripts, key=lambda t: (order.get(t.protocol, len(order)), t.protocol,
                                              t.sample_id, t.debate_index, t.key))


def _record(t: Transcript, weak: list[tuple[int, dict[str, float]]]) -> dict:
    """One transcript in full, as the page renders it."""
    preds = [[j, round(p[t.sample_id], 6)] for j, p in weak if t.sample_id in p]
    return {
        "sid": t.sample_id, "task": t.task, "protocol": t.protocol, "k": t.debate_index,
        "gold": t.gold_label, "aLabel": t.a_label, "positions": list(t.positions),
        "text": t.sample_text, "error": t.error,
        "turns": [[x.index, x.side, x.role, x.position_label, x.text, x.completion_tokens, x.finish_reason, row]
                  for x, row in zip(t.turns, _rows(t.turns))],
        "preds": preds,
        "prov": {"model": t.model, "backend": t.backend, "prompts": f"{t.prompt_set}@{t.prompt_hash}",
                 "seed": t.seed, "turns": t.num_turns, "sampling": json.dumps(t.sampling.model_dump()),
                 "key": t.key, "seconds": t.seconds, "control": t.control},
    }


def _index(ts: list[Transcript], labellers: list[str], weak: list[tuple[int, dict[str, float]]],
           file_size: int) -> tuple[dict, list[str]]:
    """The filter index (one compact column per field, an entry per transcript in
    display order) and the search strings (one per distinct sample)."""
    protocols = list(dict.fromkeys(t.protocol for t in ts))
    pcode = {p: i for i, p in enumerate(protocols)}
    samples: dict[str, int] = {}
    search: list[str] = []
    col: dict[str, list] = {"sample": [], "protocol": [], "gold": [], "aGold": [], "weak": []}
    for t in ts:
        s = samples.get(t.sample_id)
        if s is None:
            s = samples[t.sample_id] = len(samples)
            search.append(f"{t.sample_id} {t.sample_text[:SEARCH_CHARS]}".lower())
        col["sample"].append(s)
        col["protocol"].append(pcode[t.protocol])
        col["gold"].append(t.gold_label)
        col["aGold"].append(int(t.a_label == t.gold_label))  # A (or the consultant) argued the gold label
        # one character per labeller: r(ight), w(rong), - (no prediction for this sample)
        col["weak"].append("".join("-" if t.sample_id not in p else "r" if predicted_label_tie_as_1(p[t.sample_id]) == t.gold_label
                                   else "w" for _, p in weak))
    index = {"version": INDEX_VERSION, "total": len(ts), "fileSize": file_size,
             "files": -(-len(ts) // file_size),
             "protocols": [[p, list(protocol_spec(p).speakers)] for p in protocols],
             "labellers": labellers, "samples": list(samples), **col}
    return index, search


def _controls(ts: list[Transcript], labellers: list[str]) -> str:
    """The filter controls. Option values are codes into the index; names are escaped text."""
    golds = sorted({t.gold_label for t in ts})
    html = ('<input type="search" id="q" placeholder="search sample id or text">'
            '<select id="gold"><option value="">any gold</option>'
            + "".join(f'<option value="{g}">gold {g}</option>' for g in golds) + "</select>")
    protocols = list(dict.fromkeys(t.protocol for t in ts))
    if len(protocols) > 1:
        html += ('<select id="protocol"><option value="">any protocol</option>'
                 + "".join(f'<option value="{i}">{_e(p)}</option>' for i, p in enumerate(protocols)) + "</select>")
    # Who argued the truth: value "<number of speakers>:<side that argued the gold label>".
    n_speakers = {len(protocol_spec(p).speakers) for p in protocols}
    truth = []
    if 2 in n_speakers:
        truth += ['<option value="2:A">A argued gold</option>', '<option value="2:B">B argued gold</option>']
    if 1 in n_speakers:
        truth += ['<option value="1:A">consultant argued gold</option>',
                  '<option value="1:B">consultant argued against gold</option>']
    if truth:
        html += '<select id="truth"><option value="">any side</option>' + "".join(truth) + "</select>"
    if labellers:
        opts = ['<option value="w:*">some labeller wrong</option>', '<option value="r:*">every labeller right</option>']
        if len(labellers) > 1:  # per labeller only when there is more than one to blame
            for i, n in enumerate(labellers):
                opts += [f'<option value="w:{i}">{_e(n)} wrong</option>',
                         f'<option value="r:{i}">{_e(n)} right</option>']
        html += '<select id="weak"><option value="">any weak prediction</option>' + "".join(opts) + "</select>"
    return html


def render_viewer(transcripts: list[Transcript], weak_preds: dict[str, dict[str, float]] | None = None,
                  title: str = "Debates", data_dir: str = "debates", file_size: int = FILE_SIZE,
                  per_page: int = PER_PAGE) -> Iterator[tuple[str, str]]:
    """The viewer's files as (path relative to the page's folder, text): the page first
    ("<data_dir>.html"), then data_dir/index.js, data_dir/search.js and one
    data_dir/pNNNNN.js per `file_size` transcripts, in display order."""
    ts = display_order(transcripts)
    labellers = list(weak_preds or {})
    weak = [(i, (weak_preds or {})[n]) for i, n in enumerate(labellers)]
    index, search = _index(ts, labellers, weak, file_size)
    yield f"{data_dir}.html", (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>"
        f"<header><h1>{_e(title)}</h1>{_controls(ts, labellers)}"
        '<span id="count"></span><span id="pager"><button id="first" title="first page">&laquo;</button>'
        '<button id="prev">&lsaquo; prev</button> page <input type="number" id="pagenum" min="1" value="1"> '
        '<span id="pageinfo"></span><button id="next">next &rsaquo;</button>'
        '<button id="last" title="last page">&raquo;</button></span><div id="status"></div></header>'
        f'<main id="list" data-dir="{_e(quote(data_dir))}" data-per-page="{int(per_page)}"></main>'
        f"<script>{JS}</script></body></html>\n"
    )
    yield f"{data_dir}/index.js", f"viewerIndex({_js(index)});\n"
    yield f"{data_dir}/search.js", f"viewerSearch({_js(search)});\n"
    for n, start in enumerate(range(0, len(ts), file_size)):
        records = [_record(t, weak) for t in ts[start:start + file_size]]
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


_OWN = re.compile(r"(p\d{5,}|index|search)\.js")


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
    for rel, text in render_viewer(ts, load_weak_preds(layout) or None, title=f"Debates: {layout.root.name}",
                                   data_dir=data.name):
        if rel.endswith(".html"):
            page_text = text  # written last: the page never points at missing data
            continue
        path = data / Path(rel).name
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
        written.add(path.name)
    for stale in data.iterdir():  # data files of an earlier, larger run
        if _OWN.fullmatch(stale.name) and stale.name not in written:
            stale.unlink()
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(page_text, encoding="utf-8")
    os.replace(tmp, out)
    return out
