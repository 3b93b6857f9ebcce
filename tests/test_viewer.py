import base64
import itertools
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
    (rd / "splits.json").write_text(json.dumps({"weak_train": ["s0"], "transfer": ["s1"], "test": ["s2", "s3"]}))
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


def test_load_splits(tmp_path):
    assert load_splits(RunLayout(tmp_path / "nothing")) == {}  # a run stopped after its debates
    rd = _write_run(tmp_path)
    assert load_splits(rd) == {"s0": "weak_train", "s1": "transfer", "s2": "test", "s3": "test"}
    write_viewer(rd)
    index = payload((rd.root / "debates" / "index.js").read_text("utf-8"))
    assert index["haveSplits"] and index["samples"] == ["s1", "s2", "s3"]
    assert [index["splits"][c] for c in index["split"]] == ["transfer", "test", "test"]
    assert index["p1"] == [[750, 600, 300]]  # P(1) in thousandths per labeller and sample
    assert '<select id="split">' in (rd.root / "debates.html").read_text("utf-8")


def test_natural_sort_order():
    ids = ["demo-10", "demo-2", "demo-70", "demo-7", "demo-1", "Demo-3", "demo-007"]
    assert sorted(ids, key=natural_key) == ["demo-1", "demo-2", "Demo-3", "demo-007", "demo-7", "demo-10",
                                            "demo-70"]
    ts = [transcript(i, ["x"]) for i in ids] + [transcript("demo-2", ["x"], k=1)]
    fs = files(ts)
    assert [(r["sid"], r["k"]) for r in records(fs)] == [
        ("demo-1", 0), ("demo-2", 0), ("demo-2", 1), ("Demo-3", 0), ("demo-007", 0), ("demo-7", 0),
        ("demo-10", 0), ("demo-70", 0)]
    index = payload(fs["debates/index.js"])
    assert index["samples"] == ["demo-1", "demo-2", "Demo-3", "demo-007", "demo-7", "demo-10", "demo-70"]
    assert index["k"] == [0, 0, 1, 0, 0, 0, 0, 0]


def decode_search(fs: dict[str, str]) -> dict[str, set[int]]:
    """{term: display positions} from the search shards, checking each term lies in the
    shard its hash names (the page looks it up there)."""
    index = payload(fs["debates/index.js"])
    out: dict[str, set[int]] = {}
    for n in range(index["shards"]):
        pairs = payload(fs[f"debates/t{n:05d}.js"])
        for term, posting in zip(pairs[::2], pairs[1::2]):
            assert _shard_hash(term) % index["shards"] == n and term not in out
            if isinstance(posting, str):  # a little-endian bitset over all positions
                bits = base64.b64decode(posting)
                out[term] = {i for i in range(index["total"]) if bits[i >> 3] >> (i & 7) & 1}
            else:  # gaps
                out[term] = set(itertools.accumulate(posting))
    return out


def test_search_index_holds_every_word_of_every_turn():
    ts = sample_set() + [transcript("s4", ["Only I speak.", "caf\u00e9 \u00dcn\u00efc\u00f6d\u00e9 \u4e2d\u6587"],
                                    protocol="consultancy")]
    ts += [transcript(f"w{i}", ["common word", f"rare{i} common"], sample_text="shared") for i in range(40)]
    fs = files(ts, file_size=7)
    search = decode_search(fs)
    order = display_order(ts)
    expected: dict[str, set[int]] = {}
    for i, t in enumerate(order):
        for w in words(t.sample_text + " " + " ".join(x.text for x in t.turns)):
            expected.setdefault(w, set()).add(i)
    assert search == expected
    # A word of a turn finds its debate, whatever its case; words are letters and digits in any script.
    assert search["drags"] == {order.index(ts[1])} and search["rebuttal"] == {order.index(ts[2])}
    assert {"caf\u00e9", "\u00fcn\u00efc\u00f6d\u00e9", "\u4e2d\u6587"} <= set(search)
    assert len(search["common"]) == 40 and len(search["rare7"]) == 1
    assert words("Don't STOP_now: x2 " + "y" * 60) == {"don", "t", "stop_now", "x2", "y" * MAX_TERM}


def test_splits_shown_and_absent_predictions_explained():
    split = {"s1": "transfer", "s2": "test", "s3": "test", "s4": "weak_train"}
    ts = sample_set() + [transcript("s4", ["x", "y"])]
    fs = files(ts, PREDS, splits=split)
    index = payload(fs["debates/index.js"])
    assert [index["splits"][c] for c in index["split"]] == ["transfer", "test", "test", "weak_train"]
    # Only the splits present are offered; without splits.json there is no split filter.
    assert '<option value="0">weak_train</option>' in fs["debates.html"]
    assert '<option value="3">unassigned</option>' not in fs["debates.html"]
    assert 'id="split"' not in files(ts, PREDS)["debates.html"]
    assert not payload(files(ts, PREDS)["debates/index.js"])["haveSplits"]
    # The page shows the split and explains an absent prediction: test_debate_view_in_chromium.


@pytest.mark.slow
def test_search_index_and_data_files_stay_bounded_at_60000_transcripts():
    from bench.bench_viewer import synthetic_transcripts
    recs, preds, split = synthetic_transcripts(60000)
    ts = [Transcript(**r) for r in recs]
    sizes = {rel: len(text.encode("utf-8")) for rel, text in render_viewer(ts, preds, splits=split)}
    shards = [v for k, v in sizes.items() if re.fullmatch(r"debates/t\d{5}\.js", k)]
    data = [v for k, v in sizes.items() if re.fullmatch(r"debates/p\d{5}\.js", k)]
    # What one search or one page loads does not grow with the run: the shards multiply instead.
    assert len(shards) >= 10 and max(shards) <= MAX_SHARD_BYTES
    assert len(data) == 300 and max(data) < 1 << 20
    assert sizes["debates/index.js"] < 3 << 20 and sizes["debates.html"] < 64 << 10


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
    _search(b, "")
    # A word from a turn deep in the run (data file 21) finds exactly the transcripts whose
    # text holds it, through the shards of the search index (here several).
    data = tmp_path / "big" / "debates"
    assert len(list(data.glob("t*.js"))) >= 2
    recs = [r for f in sorted(data.glob("p*.js")) for r in payload(f.read_text("utf-8"))]
    has = [words(r["text"] + " " + " ".join(t[4] for t in r["turns"])) for r in recs]
    target = recs[4321]
    word = min(words(" ".join(t[4] for t in target["turns"])), key=lambda w: sum(w in h for h in has))
    expected = [i for i, h in enumerate(has) if word in h]
    assert 4321 in expected and len(expected) < 5000
    _search(b, word.upper())
    assert _js_count(b) == f"{len(expected)} of 5000 transcripts"
    assert b.eval("[...document.querySelectorAll('article')].map(a => +a.getAttribute('data-i'))") == expected[:50]
    both = [i for i in expected if "energy" in has[i]]
    _search(b, f"{word} energy")
    assert _js_count(b) == f"{len(both)} of 5000 transcripts"
    _search(b, "")
    # The split filter: the weak_train samples' transcripts, which no labeller predicts on.
    index = payload((data / "index.js").read_text("utf-8"))
    weak_train = [i for i in range(5000) if index["splits"][index["split"][index["sample"][i]]] == "weak_train"]
    _choose(b, "split", "0")
    assert _js_count(b) == f"{len(weak_train)} of 5000 transcripts"
    assert b.eval("[...document.querySelectorAll('article .why')].length") == PER_PAGE
    _choose(b, "split", "")
    # The table, sorted by the first labeller's correctness: every wrong first, no prediction last.
    _choose(b, "view", "table")
    _click(b, "th[data-sort=w0]")
    wrong = sum(w[0] == "w" for w in index["weak"])
    assert set(_rows(b, 5)) == {"\u2717 wrong"} and wrong > 100
    n = b.renders()
    b.eval("document.getElementById('last').click()")
    b.wait_render(n)
    assert set(_rows(b, 5)) == {"\u2013"}
    # A row opens its debate.
    sid, k, protocol = _rows(b, 0)[3], _rows(b, 1)[3], _rows(b, 2)[3]
    _click(b, "table.rows tbody tr:nth-child(4) td:nth-child(4)")
    assert _shown(b) == [sid] and b.eval("location.hash").startswith(f"#sample/{sid}/{protocol}/{k}&")
    # A permalink at this scale opens its debate directly.
    _open(b, page, "#sample/sciq-000777/consultancy/0")
    assert _shown(b) == ["sciq-000777"]
    assert b.eval("document.querySelector('article').getAttribute('data-protocol')") == "consultancy"


# -- the search, the table, the one-debate view, the split, keys (headless Chromium)

KEYS = {"j": ("KeyJ", 74), "k": ("KeyK", 75), "ArrowRight": ("ArrowRight", 39), "ArrowLeft": ("ArrowLeft", 37),
        "Escape": ("Escape", 27)}


def _write_page(folder: Path, fs) -> Path:
    for rel, text in fs:
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text, encoding="utf-8")
    return folder / "debates.html"


def _choose(b, select: str, value: str) -> None:  # what a user's pick in a <select> fires
    n = b.renders()
    b.eval(f"{{ const s = document.getElementById('{select}'); s.value = '{value}';"
           " s.dispatchEvent(new Event('change', {bubbles: true})); }")
    assert b.eval(f"document.getElementById('{select}').value") == value  # an option the page has
    b.wait_render(n)


def _search(b, text: str) -> None:
    n = b.renders()
    b.eval(f"{{ const q = document.getElementById('q'); q.value = {json.dumps(text)};"
           " q.dispatchEvent(new Event('input')); q.blur(); }")
    b.wait_render(n)


def _click(b, selector: str) -> None:
    n = b.renders()
    b.eval(f"document.querySelector({json.dumps(selector)}).click()")
    b.wait_render(n)


def _key(b, key: str) -> None:
    """A real key press (DevTools Input domain), with the focus on the page, not a control."""
    code, vk = KEYS[key]
    n = b.renders()
    b.eval("document.activeElement && document.activeElement.blur()")
    for kind in ("rawKeyDown", "keyUp"):
        b.call("Input.dispatchKeyEvent", session=True, type=kind, key=key, code=code, windowsVirtualKeyCode=vk)
    b.wait_render(n)


def _shown(b) -> list[str]:
    return b.eval("[...document.querySelectorAll('article .sid')].map(e => e.textContent)")


def _rows(b, col: int = 0) -> list[str]:
    return b.eval(f"[...document.querySelectorAll('table.rows tbody tr')].map(r => r.cells[{col}].textContent)")


@needs_chromium
def test_debate_view_search_split_and_table_in_chromium(tmp_path, browser):
    b = browser
    split = {"s1": "transfer", "s2": "test", "s3": "test", "s4": "weak_train"}
    uni = "caf\u00e9 \u00fcn\u00efc\u00f6d\u00e9 \u4e2d\u6587"
    ts = sample_set() + [transcript("s4", ["Only I speak.", uni], protocol="consultancy")]
    page = _write_page(tmp_path, render_viewer(ts, PREDS, splits=split))
    # A permalink opens one debate; its position is in the current (here: no) filter.
    _open(b, page, "#sample/s2/debate/0")
    assert _shown(b) == ["s2"] and b.eval("document.getElementById('dpos').textContent") == "2 of 4"
    assert b.eval("document.querySelector('article .tag.split').textContent") == "test"
    assert b.eval("getComputedStyle(document.getElementById('pager')).display") == "none"
    # Next and previous by key and by button, through the display order.
    _key(b, "j")
    assert _shown(b) == ["s3"] and b.eval("location.hash") == "#sample/s3/debate/0"
    # s3 has the weak labeller's prediction but not weak_debate's; the page says why.
    assert b.eval("document.querySelector('article .why').textContent") == \
        "weak_debate: no prediction \u2014 its labeller.json has no prediction for this test sample"
    _key(b, "ArrowRight")
    assert _shown(b) == ["s4"] and b.eval("location.hash") == "#sample/s4/consultancy/0"
    assert b.eval("document.querySelector('article .why').textContent") == (
        "no weak prediction \u2014 weak labellers predict on transfer and test only; this is a weak_train sample")
    assert b.eval("document.getElementById('dnext').disabled")
    _key(b, "ArrowLeft")
    _click(b, "#dprev")
    _key(b, "k")
    assert _shown(b) == ["s1"] and b.eval("document.getElementById('dprev').disabled")
    _key(b, "Escape")  # back to the list
    assert _shown(b) == ["s1", "s2", "s3", "s4"] and b.eval("location.hash") == ""
    # Each card's id is its permalink.
    _click(b, "article:nth-of-type(3) a.sid")
    assert _shown(b) == ["s3"] and b.eval("location.hash") == "#sample/s3/debate/0"
    # A short link resolves to the sample's first debate; a wrong one says so.
    _open(b, page, "#sample/s4")
    assert _shown(b) == ["s4"] and b.eval("location.hash") == "#sample/s4/consultancy/0"
    _open(b, page, "#sample/nope/debate/0")
    assert _shown(b) == [] and "No debate nope / debate / 0 in this run." in \
        b.eval("document.getElementById('status').textContent")
    # Previous/next follow the filters of the link.
    _open(b, page, "#sample/s3/debate/0&gold=0")
    assert b.eval("document.getElementById('dpos').textContent") == "2 of 2"

    # Search: a word from any turn, in any case and script; several words must all occur.
    _open(b, page)
    _search(b, "drags")
    assert _shown(b) == ["s2"] and _js_count(b) == "1 of 4 transcripts"
    _search(b, "CAF\u00c9 \u4e2d\u6587")
    assert _shown(b) == ["s4"]
    _search(b, "positive acting")
    assert _shown(b) == ["s2"]
    _search(b, "positive nowhere")
    assert _shown(b) == [] and _js_count(b) == "0 of 4 transcripts"
    _search(b, "")
    # The split filter.
    _choose(b, "split", "0")
    assert _shown(b) == ["s4"] and b.eval("location.hash") == "#split=0"
    _choose(b, "split", "2")
    assert _shown(b) == ["s2", "s3"]
    _choose(b, "split", "")

    # The table: sorted by a labeller's correctness (wrong first, then right, no prediction last).
    _choose(b, "view", "table")
    assert _rows(b) == ["s1", "s2", "s3", "s4"]
    heads = b.eval("[...document.querySelectorAll('table.rows th')].map(h => h.textContent)")
    assert heads == ["id", "k", "protocol", "split", "gold", "weak", "P(1)", "weak_debate", "P(1)"]
    assert _rows(b, 5) == ["\u2713 right", "\u2717 wrong", "\u2713 right", "\u2013"]
    assert _rows(b, 6) == ["0.800", "0.700", "0.100", "\u2013"]
    _click(b, "th[data-sort=w0]")
    assert _rows(b) == ["s2", "s1", "s3", "s4"] and "sort=w0" in b.eval("location.hash")
    assert b.eval("document.querySelector('th[data-sort=w0]').getAttribute('aria-sort')") == "ascending"
    _click(b, "th[data-sort=w0]")  # again: the other way
    assert _rows(b) == ["s1", "s3", "s2", "s4"]
    _click(b, "th[data-sort=p1]")  # weak_debate's P(1), low first; s3 and s4 have none
    assert _rows(b) == ["s2", "s1", "s3", "s4"]
    # A row opens its debate; previous/next follow the table's order.
    _click(b, "table.rows tbody tr:nth-child(2) td:nth-child(4)")
    assert _shown(b) == ["s1"] and b.eval("document.getElementById('dpos').textContent") == "2 of 4"
    _key(b, "k")
    assert _shown(b) == ["s2"]
    _key(b, "Escape")
    assert _rows(b) == ["s2", "s1", "s3", "s4"]


@needs_chromium
def test_id_search_and_natural_order_in_chromium(tmp_path, browser):
    b = browser
    ids = [f"demo-{i}" for i in range(80)]
    page = _write_page(tmp_path, render_viewer([transcript(i, [f"about {i}"]) for i in reversed(ids)]))
    _open(b, page)
    assert _shown(b) == ids[:50]  # demo-0, demo-1, demo-2, ..., demo-10: natural, not lexicographic
    # An id matches exactly or as a prefix; the exact match first.
    _search(b, "demo-7")
    assert _shown(b) == ["demo-7"] + [f"demo-{i}" for i in range(70, 80)]
    _search(b, "DEMO-79")
    assert _shown(b) == ["demo-79"]
    _choose(b, "sort", "-id")
    _search(b, "demo-7")
    assert _shown(b) == ["demo-7"] + [f"demo-{i}" for i in range(79, 69, -1)]


# -- quote grades and controls

PASSAGE = "Passage: the quick brown fox jumps over the lazy dog near the river bank today."
QUOTED = ["As written, <quote>lazy dog near the river</quote>, and <QUOTE>a purple elephant sings</QUOTE>.",
          "No: <quote>the quick brown fox leaps over the lazy dog near the river</quote>.", "No quotes here."]


def _graded_run(tmp_path: Path) -> tuple[RunLayout, list[Transcript]]:
    """A run folder whose store holds a quoted debate (its grades recorded by the weak stage's
    own writer), a debate told to mislead (debate.mislead) and an honest one of that run."""
    from debate.quotes import QuoteCheck, TranscriptQuotes
    from weak.stage import write_quote_grades
    lay = RunLayout(tmp_path / "graded")
    lay.transcripts.parent.mkdir(parents=True)
    q = transcript("q1", QUOTED, sample_text=PASSAGE)
    told = transcript("m1", ["Trust me.", "Check it.", "I am sure."], deceptive=True, mislead_hash="h1")
    honest = transcript("m2", ["x", "y", "z"], deceptive=False)
    lay.transcripts.write_text("".join(t.model_dump_json() + "\n" for t in (q, told, honest)))
    lay.quote_grades.parent.mkdir(parents=True)
    write_quote_grades(lay.quote_grades, {"debate": [TranscriptQuotes.of("debate", q, QuoteCheck(PASSAGE, 0.9))]})
    return lay, [q, told, honest]


def test_quote_grades_and_mislead_controls_in_the_data(tmp_path):
    lay, _ = _graded_run(tmp_path)
    write_viewer(lay)
    recs = {r["sid"]: r for p in sorted(data_dir_of(lay.viewer).glob("p*.js")) for r in payload(p.read_text("utf-8"))}
    # graded by debate/quotes.py: verbatim, nowhere, one word changed in twelve; a turn without quotes
    assert [t[8] for t in recs["q1"]["turns"]] == [["verified", "unverified"], ["fuzzy"], []]
    assert recs["q1"]["quotes"] == {"verified": 1, "fuzzy": 1, "unverified": 1}
    assert recs["m1"]["quotes"] is None and recs["m1"]["turns"][0][8] is None  # not graded: none shown
    assert recs["m1"]["prov"]["deceptive"] is True and recs["m2"]["prov"]["deceptive"] is False
    assert "[CONTROL: debate.mislead]" in lay.viewer.read_text("utf-8")


@needs_chromium
def test_quote_grades_and_mislead_controls_render(tmp_path, browser):
    lay, _ = _graded_run(tmp_path)
    _open(browser, write_viewer(lay))
    b = browser
    art = "document.querySelector('article[data-i=\"{}\"]')"
    order = b.eval("[...document.querySelectorAll('article .sid')].map(e => e.textContent)")
    q, m1, m2 = (art.format(order.index(s)) for s in ("q1", "m1", "m2"))
    spans = b.eval(f"[...{q}.querySelectorAll('.tx .q')].map(s => [s.className, s.textContent])")
    assert spans == [["q q-verified", "<quote>lazy dog near the river</quote>"],
                     ["q q-unverified", "<QUOTE>a purple elephant sings</QUOTE>"],
                     ["q q-fuzzy", "<quote>the quick brown fox leaps over the lazy dog near the river</quote>"]]
    assert b.eval(f"{q}.querySelector('.tx').textContent") == QUOTED[0]  # the text itself unchanged
    assert b.eval(f"{q}.querySelector('.quotes').textContent") == \
        "quotes: 1 verified \u00b7 1 fuzzy \u00b7 1 unverified"
    assert b.eval(f"{m1}.querySelector('.control').textContent") == "[CONTROL mislead] told to mislead"
    assert b.eval(f"{m2}.querySelector('.control').textContent") == "[CONTROL mislead]"
    assert b.eval(f"{q}.querySelector('.control')") is None and b.eval(f"{q}.querySelector('.q') !== null")
    assert "[CONTROL: debate.mislead]" in b.eval("document.title")
