"""A static, self-contained HTML viewer for debate transcripts.

One file, no server, no external resources: it can be opened from disk, attached
to a report, or archived next to the run. Every piece of model or dataset text is
passed through `html.escape`; the only script is the constant filter code below,
which reads data-* attributes and never contains run data.
"""
from __future__ import annotations

import json
from html import escape
from pathlib import Path

from core.layout import RunLayout
from core.protocols import protocol as protocol_spec
from debate.engine import load_transcripts
from debate.transcript import Transcript, Turn
from weak.labels import LabellerResult

CSS = """
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; background: #f4f5f7; color: #1d1f23; }
header { position: sticky; top: 0; z-index: 1; background: #fff; border-bottom: 1px solid #d8dbe0; padding: 8px 16px; display: flex; flex-wrap: wrap; gap: 12px; align-items: center; }
header h1 { font-size: 17px; margin: 0 12px 0 0; }
header input[type=search] { width: 280px; padding: 4px 6px; }
#count { color: #666; margin-left: auto; }
main { padding: 12px 16px; }
article { background: #fff; border: 1px solid #d8dbe0; border-radius: 6px; padding: 12px 14px; margin: 0 0 14px; }
article.hidden { display: none; }
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

# Constant code: it only reads data-* attributes, so no run text ever sits inside <script>.
JS = """
(function () {
  var q = document.getElementById('q'), gold = document.getElementById('gold'),
      wrong = document.getElementById('wrong'), who = document.getElementById('who'),
      proto = document.getElementById('protocol'),
      count = document.getElementById('count'),
      items = Array.prototype.slice.call(document.querySelectorAll('article[data-search]'));
  function apply() {
    var text = q.value.toLowerCase(), shown = 0;
    items.forEach(function (el) {
      var wrongBy = (el.getAttribute('data-wrong') || '').split(' ').filter(Boolean), ok = true;
      if (text && el.getAttribute('data-search').indexOf(text) < 0) ok = false;
      if (gold.value !== '' && el.getAttribute('data-gold') !== gold.value) ok = false;
      if (proto && proto.value !== '' && el.getAttribute('data-protocol') !== proto.value) ok = false;
      if (wrong && wrong.checked) {
        var name = who ? who.value : '';
        if (name ? wrongBy.indexOf(name) < 0 : wrongBy.length === 0) ok = false;
      }
      el.classList.toggle('hidden', !ok);
      if (ok) shown++;
    });
    count.textContent = shown + ' of ' + items.length + ' debates';
  }
  [q, gold, wrong, who, proto].forEach(function (el) {
    if (el) { el.addEventListener('input', apply); el.addEventListener('change', apply); }
  });
  apply();
})();
"""


def _e(x: object) -> str:
    return escape(str(x), quote=True)


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


def _turn_html(t: Transcript, turn: Turn, row: int) -> str:
    col = 1 if turn.side == "A" else 2
    gold = ' <span class="defends-gold">(gold)</span>' if turn.position_label == t.gold_label else ""
    head = (f"Turn {turn.index + 1} &middot; {_e(turn.role)} &middot; argues {turn.position_label}: "
            f"<b>{_e(t.positions[turn.position_label])}</b>{gold} &middot; "
            f"{turn.completion_tokens} tok &middot; {_e(turn.finish_reason)}")
    return (f'<div class="turn side{turn.side}" style="grid-row:{row + 1};grid-column:{col}">'
            f'<div class="th">{head}</div><div class="tx">{_e(turn.text)}</div></div>')


def _preds_html(t: Transcript, weak_preds: dict[str, dict[str, float]]) -> tuple[str, list[str]]:
    parts, wrong = [], []
    for name, preds in weak_preds.items():
        p1 = preds.get(t.sample_id)
        if p1 is None:
            continue
        right = int(p1 >= 0.5) == t.gold_label
        if not right:
            wrong.append(name)
        mark = '<b class="ok">right</b>' if right else '<b class="bad">wrong</b>'
        parts.append(f"<span>{_e(name)}: P(1)={p1:.3f} &rarr; {int(p1 >= 0.5)} {mark}</span>")
    body = "".join(parts) or "<span>no weak prediction for this sample</span>"
    return f'<div class="preds">Weak predictions: {body}</div>', wrong


def _debate_html(t: Transcript, weak_preds: dict[str, dict[str, float]] | None) -> str:
    gold_pos = t.positions[t.gold_label]
    preds, wrong = _preds_html(t, weak_preds) if weak_preds else ("", [])
    err = f' <span class="tag err">error: {_e(t.error)}</span>' if t.error else ""
    speakers = protocol_spec(t.protocol).speakers  # one column per speaker
    cols = "".join(
        f'<div class="colhead side{side}" style="grid-row:1;grid-column:{i + 1}">{_e(who)} &middot; '
        f'{_e(t.positions[t.a_label if side == "A" else 1 - t.a_label])}</div>'
        for i, (side, who) in enumerate(zip("AB", speakers)))
    turns = "".join(_turn_html(t, x, r) for x, r in zip(t.turns, _rows(t.turns)))
    s = t.sampling
    prov = (f"model <code>{_e(t.model)}</code> &middot; backend <code>{_e(t.backend)}</code> &middot; "
            f"prompts <code>{_e(t.prompt_set)}@{_e(t.prompt_hash)}</code> &middot; seed {t.seed} &middot; "
            f"debate {t.debate_index} &middot; protocol {_e(t.protocol)}/{t.num_turns} turns &middot; "
            f"sampling <code>{_e(json.dumps(s.model_dump()))}</code> &middot; key <code>{_e(t.key)}</code>"
            f" &middot; {t.seconds:.1f}s")
    search = (t.sample_id + " " + t.sample_text).lower()
    return (
        f'<article class="debate" data-search="{_e(search)}" data-gold="{t.gold_label}" '
        f'data-protocol="{_e(t.protocol)}" data-wrong="{_e(" ".join(wrong))}">'
        f'<div class="meta"><span class="sid">{_e(t.sample_id)}</span>'
        f'<span class="tag">{_e(t.task)}</span><span class="tag">{_e(t.protocol)} {t.debate_index}</span>'
        f'<span class="tag gold">gold {t.gold_label}: {_e(gold_pos)}</span>{err}</div>'
        f'<div class="sample">{_e(t.sample_text)}</div>'
        f'<div class="turns">{cols}{turns}</div>{preds}'
        f'<details class="prov"><summary>provenance</summary>{prov}</details></article>'
    )


def render_html(transcripts: list[Transcript], weak_preds: dict[str, dict[str, float]] | None = None,
                title: str = "Debates") -> str:
    """One self-contained HTML page showing every debate, optionally with weak predictions."""
    ts = sorted(transcripts, key=lambda t: (t.sample_id, t.protocol, t.debate_index))
    golds = sorted({t.gold_label for t in ts})
    gold_opts = "".join(f'<option value="{g}">gold {g}</option>' for g in golds)
    protocols = sorted({t.protocol for t in ts})
    proto_ctl = ("" if len(protocols) < 2 else '<select id="protocol"><option value="">any protocol</option>'
                 + "".join(f'<option value="{_e(p)}">{_e(p)}</option>' for p in protocols) + "</select>")
    wrong_ctl = ""
    if weak_preds:
        names = list(weak_preds)
        # A labeller picker only matters when there is more than one to blame.
        who = ("" if len(names) < 2 else '<select id="who"><option value="">any labeller</option>'
               + "".join(f'<option value="{_e(n)}">{_e(n)}</option>' for n in names) + "</select>")
        wrong_ctl = f'<label><input type="checkbox" id="wrong"> weak model wrong</label>{who}'
    body = "".join(_debate_html(t, weak_preds) for t in ts) or "<p>No debates.</p>"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>"
        f'<header><h1>{_e(title)}</h1>'
        '<input type="search" id="q" placeholder="search sample id or text">'
        f'<select id="gold"><option value="">any gold</option>{gold_opts}</select>{proto_ctl}{wrong_ctl}'
        '<span id="count"></span></header>'
        f"<main>{body}</main><script>{JS}</script></body></html>\n"
    )


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


def write_viewer(layout: RunLayout, out: Path | None = None) -> Path:
    """Write the run's debates.html (or `out`) for its successful debates."""
    ts = [t for t in load_transcripts(layout.transcripts).values() if t.ok]
    out = Path(out) if out is not None else layout.viewer
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_html(ts, load_weak_preds(layout) or None, title=f"Debates: {layout.root.name}"),
                   encoding="utf-8")
    return out
