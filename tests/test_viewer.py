import json
import re
import shutil
from html import escape
from pathlib import Path

import pytest

from w2s_base.runfolder.layout import RunLayout
from debate.transcript import Transcript
from factories import make_transcript
from w2s_run.report.viewer import (MAX_SHARD_BYTES, MAX_TERM, PER_PAGE, _shard_hash, data_dir_of,
                                   display_order, load_splits, load_weak_preds, natural_key, render_viewer,
                                   words, write_viewer)

XSS = "<script>alert(1)</script>"
XSS_IMG = '<img src=x onerror="window.pwned=1">'
CHROMIUM = Path("/usr/bin/chromium")
needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(),
                                    reason="needs /usr/bin/chromium (apt-get install chromium)")


def transcript(sid: str, texts: list[str], **kw) -> Transcript:
    return make_transcript(sid, texts, **kw)


def sample_set() -> list[Transcript]:
    return [
        transcript("s1", ["It is clearly positive & warm.", f"No: {XSS} {XSS_IMG}", "Still positive."],
                   sample_text=f"Great film {XSS} loved it"),
        transcript("s2", ["Negative, the plot drags.", "Positive, the acting \"shines\"."], gold=0, a_label=1),
        transcript("s3", ["Opening for A.", "Counter by B.", "Rebuttal by A."], gold=0),
    ]


PREDS = {"weak": {"s1": 0.8, "s2": 0.7, "s3": 0.1}, "weak_debate": {"s1": 0.9, "s2": 0.2}}


def files(ts, preds=None, **kw) -> dict[str, str]:
    return dict(render_viewer(ts, preds, **kw))


def payload(js: str):
    """The JSON argument of a data file's registration call: viewerX([n, ]<json>);"""
    m = re.fullmatch(r"(viewerIndex|viewerTerms|viewerPage)\((?:(\d+), )?(.*)\);\n", js, re.S)
    assert m, js[:80]
    return json.loads(m.group(3))


def records(fs: dict[str, str]) -> list[dict]:
    """Every transcript record, in display order (the data files in order)."""
    pages = sorted(k for k in fs if re.fullmatch(r"debates/p\d{5}\.js", k))
    return [r for p in pages for r in payload(fs[p])]


def test_files_and_every_text_round_trips():
    ts = sample_set()
    fs = files(ts, file_size=2)
    assert list(fs) == ["debates.html", "debates/index.js", "debates/t00000.js", "debates/p00000.js",
                        "debates/p00001.js"]
    recs = records(fs)
    assert [r["sid"] for r in recs] == ["s1", "s2", "s3"]
    for t, r in zip(ts, recs):
        assert r["text"] == t.sample_text and r["positions"] == list(t.positions)
        assert [x[4] for x in r["turns"]] == [x.text for x in t.turns]  # the exact text, decoded
        assert r["prov"]["key"] == t.key and r["prov"]["prompts"] == "terse@abc123"
    assert recs[0]["prov"]["model"] == "smollm2-135m|transformers" and recs[0]["k"] == 0
    # The page itself carries no run text beyond the title and the filter names.
    assert "s1" not in fs["debates.html"] and "Great film" not in fs["debates.html"]


def test_injected_script_is_data_not_markup():
    fs = files(sample_set(), {**PREDS, XSS: {"s1": 0.1}}, title=XSS)
    html = fs["debates.html"]
    assert XSS not in html and "<img" not in html
    assert html.count(escape(XSS)) >= 4  # title, heading, the labeller's two options
    # The only script element is the viewer's own, constant, and holds no run data.
    assert len(re.findall(r"<script", html, re.I)) == 1
    assert len(re.findall(r"</script", html, re.I)) == 1
    own = re.search(r"<script>(.*?)</script>", html, re.S).group(1)
    assert "alert" not in own and "s1" not in own and "innerHTML" not in own
    # The data files contain no "<" at all (so no "</script>", no "<!--"); the text decodes exactly.
    for name, text in fs.items():
        if name.endswith(".js"):
            assert "<" not in text, name
    rec = records(fs)[0]
    assert rec["text"] == f"Great film {XSS} loved it" and XSS in rec["turns"][1][4]
    assert payload(fs["debates/index.js"])["labellers"][-1] == XSS
    terms = payload(fs["debates/t00000.js"])[::2]
    assert {"script", "alert", "img", "onerror", "pwned"} <= set(terms)  # words of the text, as data


def test_no_external_resources():
    fs = files(sample_set() + [transcript("s4", ["see https://evil.example/x.js"])], PREDS)
    for name, text in fs.items():
        text = text.replace("https://evil.example/x.js", "")
        # Links may appear only as text, never as a src/href the browser would fetch.
        assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", text, re.I), name
        assert not re.search(r"@import|url\(", text, re.I), name
        assert "http://" not in text and "https://" not in text, name


def test_turns_side_by_side_in_order():
    turns = records(files([sample_set()[0]]))[0]["turns"]
    # [index, side, role, label, text, tokens, finish, grid row]: A,B,A -> rows 1,1,2 (under the column heads)
    assert [(x[0], x[1], x[7]) for x in turns] == [(0, "A", 1), (1, "B", 1), (2, "A", 2)]
    assert [x[2] for x in turns] == ["opening", "counter", "rebuttal"]


def test_weak_predictions_and_correctness():
    fs = files(sample_set(), PREDS)
    index, recs = payload(fs["debates/index.js"]), records(fs)
    assert index["labellers"] == ["weak", "weak_debate"]
    s2 = recs[1]
    assert s2["sid"] == "s2" and s2["preds"] == [[0, 0.7], [1, 0.2]]
    # One character per labeller: s2 has gold 0, weak (0.7) is wrong, weak_debate (0.2) right;
    # s3 has no weak_debate prediction.
    assert index["weak"] == ["rr", "wr", "r-"]
    html = fs["debates.html"]
    assert '<select id="weak">' in html and '<option value="w:0">weak wrong</option>' in html
    assert '<option value="r:1">weak_debate right</option>' in html
    assert 'id="weak"' not in files(sample_set())["debates.html"]  # no predictions, no filter for them
    assert "w:0" not in files(sample_set(), {"weak": PREDS["weak"]})["debates.html"]  # one labeller: no picker


def test_index_columns_and_display_order():
    ts = sample_set() + [transcript("s1", ["Only I speak."], protocol="consultancy", a_label=1),
                         transcript("s0", ["x", "y"], k=1)]
    fs = files(ts, file_size=2)
    index = payload(fs["debates/index.js"])
    recs = records(fs)
    # Protocol first (debate, then consultancy), then sample and debate index.
    assert [(r["protocol"], r["sid"]) for r in recs] == [
        ("debate", "s0"), ("debate", "s1"), ("debate", "s2"), ("debate", "s3"), ("consultancy", "s1")]
    assert index["total"] == 5 and index["fileSize"] == 2 and index["files"] == 3
    assert index["protocols"] == [["debate", ["Debater A", "Debater B"]], ["consultancy", ["Consultant"]]]
    assert index["samples"] == ["s0", "s1", "s2", "s3"] and index["sample"] == [0, 1, 2, 3, 1]
    assert index["protocol"] == [0, 0, 0, 0, 1] and index["gold"] == [1, 1, 0, 0, 1]
    assert index["aGold"] == [0, 0, 0, 1, 1]  # A (the consultant) argued the gold label
    assert "weak" in index and index["weak"] == [""] * 5
    long = transcript("L", ["a"], sample_text="X" * 1000)
    assert payload(files([long])["debates/t00000.js"]) == ["a", [0], "x" * MAX_TERM, [0]]


def test_consultancy_shows_one_speaker_and_the_filters():
    fs = files(sample_set() + [transcript("s1", ["Only I speak."], protocol="consultancy")])
    html = fs["debates.html"]
    assert '<select id="protocol">' in html and '<option value="1">consultancy</option>' in html
    assert '<option value="2:B">B argued gold</option>' in html
    assert '<option value="1:A">consultant argued gold</option>' in html
    one = files(sample_set())["debates.html"]
    assert '<select id="protocol">' not in one and 'value="1:A"' not in one  # one protocol: no filter
    rec = records(fs)[-1]
    assert rec["protocol"] == "consultancy" and {x[1] for x in rec["turns"]} == {"A"}


def _write_run(tmp_path: Path) -> RunLayout:
    rd = tmp_path / "myrun"
    (rd / "debate").mkdir(parents=True)
    ts = sample_set() + [transcript("s9", ["x"], error="boom")]
    (rd / "debate" / "transcripts.jsonl").write_text(
        "".join(json.dumps(t.model_dump()) + "\n" for t in ts))
    from weak.labels import LabellerResult
    lab = LabellerResult(name="weak", protocol="none", aggregate="mean", members=["seed0", "seed1"],
                   transfer_p1={"s1": 0.75}, test_p1={"s2": 0.6, "s3": 0.3},
                   member_test_p1={"seed0": {"s2": 0.6, "s3": 0.2}, "seed1": {"s2": 0.6, "s3": 0.4}})
    (rd / "weak" / "weak").mkdir(parents=True)
    (rd / "weak" / "weak" / "labeller.json").write_text(lab.model_dump_json())
    (rd / "weak" / "torn").mkdir()
    (rd / "weak" / "torn" / "labeller.json").write_text('{"name": "torn", "transf')  # killed mid-write
    return RunLayout(rd)


def test_load_weak_preds(tmp_path):
    assert load_weak_preds(RunLayout(tmp_path / "nothing")) == {}
    preds = load_weak_preds(_write_run(tmp_path))
    assert preds == {"weak": {"s1": 0.75, "s2": 0.6, "s3": 0.3}}


def test_write_viewer(tmp_path):
    rd = _write_run(tmp_path)
    out = write_viewer(rd)
    assert out == rd.root / "debates.html" and data_dir_of(out) == rd.root / "debates"
    assert sorted(p.name for p in (rd.root / "debates").iterdir()) == ["index.js", "p00000.js", "t00000.js"]
    html = out.read_text(encoding="utf-8")
    assert 'data-dir="debates"' in html and "Debates: myrun" in html
    recs = [r for p in sorted((rd.root / "debates").glob("p*.js")) for r in payload(p.read_text("utf-8"))]
    assert [r["sid"] for r in recs] == ["s1", "s2", "s3"]  # the failed debate (s9) is left out
    assert recs[0]["preds"] == [[0, 0.75]] and "Rebuttal by A." in recs[2]["turns"][2][4]
    # A custom page gets its own data folder next to it.
    other = write_viewer(rd, tmp_path / "sub" / "v.html")
    assert other.exists() and (tmp_path / "sub" / "v" / "index.js").exists()
    assert 'data-dir="v"' in other.read_text(encoding="utf-8")
    # Rewriting after the run shrank removes the data files of the larger run, and only those.
    stale = rd.root / "debates" / "p00007.js"
    stale.write_text("viewerPage(7, []);\n")
    old_search = rd.root / "debates" / "search.js"  # an older viewer's search index
    old_search.write_text("viewerSearch([]);\n")
    (rd.root / "debates" / "notes.txt").write_text("mine")
    write_viewer(rd)
    assert not stale.exists() and not old_search.exists() and (rd.root / "debates" / "notes.txt").exists()
    assert not list((rd.root / "debates").glob("*.tmp")) and not list(rd.root.glob("*.tmp"))


# -- in a real browser (headless Chromium over the DevTools protocol; bench/bench_viewer.py)

@pytest.fixture(scope="module")
def browser():
    from bench.bench_viewer import Chromium
    with Chromium() as b:
        yield b


def _open(b, page: Path, fragment: str = "") -> None:
    b.open("about:blank")
    b.open(page.as_uri() + fragment)
    b.wait_render(0)


def _js_count(b) -> str:
    return b.eval("document.getElementById('count').textContent")


@needs_chromium
def test_renders_in_headless_chromium(tmp_path, browser):
    b = browser
    uni = "caf\u00e9 \u2014 \u00fcn\u00efc\u00f6d\u00e9 \U0001f600 \u2028 \u4e2d\u6587"
    mixed = sample_set() + [transcript("s4", ["Only I speak.", uni], protocol="consultancy")]
    for rel, text in render_viewer(mixed, PREDS, title=f"viewer check {XSS}"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text, encoding="utf-8")
    page = tmp_path / "debates.html"
    _open(b, page)
    dom = b.eval("document.documentElement.outerHTML")
    assert "Rebuttal by A." in dom and _js_count(b) == "4 of 4 transcripts"
    # The injected text stayed text: the only script element left is the viewer's own (the
    # data scripts remove themselves once loaded), and nothing injected ran.
    assert b.eval("document.scripts.length") == 1 and len(re.findall(r"<script", dom, re.I)) == 1
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom and "<img" not in dom
    assert b.eval("document.querySelectorAll('img').length") == 0 and b.eval("window.pwned === undefined")
    assert b.eval("document.title") == f"viewer check {XSS}"
    # Turn order: A, B side by side, A's rebuttal below A's opening.
    cells = b.eval("""[...document.querySelectorAll('article')[0].querySelectorAll('.turn')]
                      .map(d => [d.className, d.style.gridRow, d.style.gridColumn])""")
    assert cells == [["turn sideA", "2", "1"], ["turn sideB", "2", "2"], ["turn sideA", "3", "1"]]
    preds = b.eval("document.querySelectorAll('article')[1].querySelector('.preds').textContent")
    assert "weak: P(1)=0.700 \u2192 1 wrong" in preds and "weak_debate: P(1)=0.200 \u2192 0 right" in preds
    # Consultancy: one speaker column, named by w2s_base.protocols.
    heads = b.eval("""[...document.querySelector('article[data-protocol=consultancy]')
                      .querySelectorAll('.colhead')].map(h => h.textContent)""")
    assert heads == ["Consultant \u00b7 negative"]
    # Non-ASCII text (and U+2028, a line break to older JS parsers) arrives intact as UTF-8.
    last = "document.querySelector('article[data-protocol=consultancy] .turn:last-child .tx')"
    assert b.eval(f"{last}.textContent") == uni

    def choose(select: str, value: str) -> None:  # what a user's pick in a <select> fires
        n = b.renders()
        b.eval(f"{{ const s = document.getElementById('{select}'); s.value = '{value}';"
               " s.dispatchEvent(new Event('change', {bubbles: true})); }")
        b.wait_render(n)

    def shown() -> list[str]:
        return b.eval("[...document.querySelectorAll('article .sid')].map(e => e.textContent)")

    choose("weak", "w:*")  # some labeller wrong: only s2 (weak said 1, gold 0)
    assert _js_count(b) == "1 of 4 transcripts" and shown() == ["s2"]
    assert b.eval("location.hash") == "#weak=w%3A*"
    choose("weak", "")
    choose("protocol", "1")  # the protocol filter: only the consultancy transcript stays
    assert _js_count(b) == "1 of 4 transcripts" and shown() == ["s4"]
    choose("protocol", "")
    choose("truth", "2:B")  # debates where B argued the gold label: s1 (A argued 0, gold 1), s2 (1, 0)
    assert shown() == ["s1", "s2"]
    choose("truth", "2:A")
    assert shown() == ["s3"]
    choose("truth", "")
    n = b.renders()
    b.eval("{ const q = document.getElementById('q'); q.value = 'GREAT FILM'; q.dispatchEvent(new Event('input')); }")
    b.wait_render(n)
    assert shown() == ["s1"]
    # The filters live in the URL fragment: a reload restores them.
    _open(b, page, "#gold=0&weak=r%3A1")
    assert shown() == ["s2"] and b.eval("document.getElementById('gold').value") == "0"
    # Opened without its data folder, the page says what is missing instead of staying blank.
    alone = tmp_path / "alone" / "debates.html"
    alone.parent.mkdir()
    shutil.copy(page, alone)
    b.open(alone.as_uri())
    msg = b.wait_for("document.getElementById('status').textContent")
    assert "Could not load debates/index.js" in msg


@needs_chromium
def test_5000_transcripts_render_the_first_page(tmp_path, browser):
    from bench.bench_viewer import synthetic_run
    layout = synthetic_run(tmp_path / "big", 5000)
    page = write_viewer(layout)
    assert len(list((tmp_path / "big" / "debates").glob("p*.js"))) == 25
    b = browser
    _open(b, page)
    assert b.eval("document.querySelectorAll('article').length") == PER_PAGE
    assert _js_count(b) == "5000 of 5000 transcripts"
    assert b.eval("document.getElementById('pageinfo').textContent") == "of 100"
    assert b.eval("document.documentElement.getAttribute('data-first-render-ms')")
    # A real mouse click on "next": the second page, transcripts 50-99.
    box = b.eval("(r => [r.x + r.width / 2, r.y + r.height / 2])"
                 "(document.getElementById('next').getBoundingClientRect())")
    n = b.renders()
    for kind in ("mousePressed", "mouseReleased"):
        b.call("Input.dispatchMouseEvent", session=True, type=kind, x=box[0], y=box[1], button="left",
               clickCount=1)
    b.wait_render(n)
    ids = b.eval("[...document.querySelectorAll('article')].map(a => +a.getAttribute('data-i'))")
    assert ids == list(range(50, 100)) and b.eval("location.hash") == "#page=2"
    # Search one sample: its 4 debates, its consultancy and its market-making transcript.
    n = b.renders()
    b.eval("{ const q = document.getElementById('q'); q.value = 'sciq-000123'; q.dispatchEvent(new Event('input')); }")
    b.wait_render(n)
    assert _js_count(b) == "6 of 5000 transcripts"
    assert b.eval("[...document.querySelectorAll('article')].map(a => a.getAttribute('data-protocol'))") == \
        ["debate"] * 4 + ["consultancy", "market_making"]
