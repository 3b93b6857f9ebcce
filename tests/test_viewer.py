import json
import re
import shutil
import subprocess
import tempfile
from html import escape
from pathlib import Path

import pytest

from core.layout import RunLayout
from debate.transcript import Transcript
from factories import make_transcript
from report.viewer import load_weak_preds, render_html, write_viewer

XSS = "<script>alert(1)</script>"
CHROMIUM = Path("/usr/bin/chromium")


def transcript(sid: str, texts: list[str], **kw) -> Transcript:
    return make_transcript(sid, texts, **kw)


def sample_set() -> list[Transcript]:
    return [
        transcript("s1", ["It is clearly positive & warm.", f"No: {XSS}", "Still positive."],
                   sample_text=f"Great film {XSS} loved it"),
        transcript("s2", ["Negative, the plot drags.", "Positive, the acting \"shines\"."], gold=0, a_label=1),
        transcript("s3", ["Opening for A.", "Counter by B.", "Rebuttal by A."], gold=0),
    ]


PREDS = {"weak": {"s1": 0.8, "s2": 0.7, "s3": 0.1}, "weak_debate": {"s1": 0.9, "s2": 0.2}}


def test_every_turn_text_shows_escaped():
    ts = sample_set()
    html = render_html(ts)
    for t in ts:
        assert escape(t.sample_text) in html
        for x in t.turns:
            assert escape(x.text) in html
    assert "model" in html and "abc123" in html and "terse" in html and "debate 0" in html


def test_injected_script_is_text_not_code():
    html = render_html(sample_set(), PREDS, title=XSS)
    assert XSS not in html
    assert html.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 3  # turn, sample text, title
    # The only script element is the viewer's own, and it holds no run data.
    assert len(re.findall(r"<script", html, re.I)) == 1
    assert len(re.findall(r"</script", html, re.I)) == 1
    own = re.search(r"<script>(.*?)</script>", html, re.S).group(1)
    assert "alert" not in own and "s1" not in own


def test_weak_predictions_and_correctness_shown():
    html = render_html(sample_set(), PREDS)
    assert "weak_debate: P(1)=0.900" in html and "weak: P(1)=0.700" in html
    # s2 has gold 0: weak (0.7) is wrong, weak_debate (0.2) is right
    s2 = next(a for a in html.split("<article")[1:] if 'class="sid">s2<' in a)
    assert 'data-wrong="weak"' in s2 and "weak: P(1)=0.700 &rarr; 1 <b class=\"bad\">wrong" in s2
    assert 'id="wrong"' in html and 'id="who"' in html
    assert 'id="wrong"' not in render_html(sample_set())  # no predictions, no filter for them


def test_no_external_resources():
    html = render_html(sample_set() + [transcript("s4", ["see https://evil.example/x.js"])], PREDS)
    # Links may appear only as escaped text, never as a src/href the browser would fetch.
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, re.I)
    assert not re.search(r"@import|url\(", html, re.I)
    assert "http://" not in html.replace("https://evil.example/x.js", "")
    assert "https://" not in html.replace("https://evil.example/x.js", "")


def test_turns_side_by_side_in_order():
    html = render_html([sample_set()[0]])
    cells = re.findall(r'class="turn side(A|B)" style="grid-row:(\d+);grid-column:(\d)"', html)
    assert cells == [("A", "2", "1"), ("B", "2", "2"), ("A", "3", "1")]


def _write_run(tmp_path: Path) -> RunLayout:
    rd = tmp_path / "myrun"
    (rd / "debate").mkdir(parents=True)
    ts = sample_set() + [transcript("s9", ["x"], error="boom")]
    (rd / "debate" / "transcripts.jsonl").write_text(
        "".join(json.dumps(t.model_dump()) + "\n" for t in ts))
    from weak.labels import LabellerResult
    lab = LabellerResult(name="weak", protocol="none", aggregate="mean", members=["seed0", "seed1"],
                   weak_train_p1={}, transfer_p1={"s1": 0.75}, test_p1={"s2": 0.6, "s3": 0.3},
                   member_test_p1={"seed0": {"s2": 0.6, "s3": 0.2}, "seed1": {"s2": 0.6, "s3": 0.4}})
    (rd / "weak" / "weak").mkdir(parents=True)
    (rd / "weak" / "weak" / "labeller.json").write_text(lab.model_dump_json())
    (rd / "weak" / "torn").mkdir()
    (rd / "weak" / "torn" / "labeller.json").write_text('{"name": "torn", "transf')  # killed mid-write
    return RunLayout(rd)


def test_consultancy_shows_one_speaker_and_a_protocol_filter():
    html = render_html(sample_set() + [transcript("s1", ["Only I speak."], protocol="consultancy")])
    art = [a for a in html.split("<article")[1:] if 'data-protocol="consultancy"' in a]
    assert len(art) == 1 and "Consultant &middot; negative" in art[0] and "Debater B" not in art[0]
    assert '<select id="protocol">' in html and '<option value="consultancy">' in html
    assert '<select id="protocol">' not in render_html(sample_set())  # one protocol: no filter


def test_load_weak_preds(tmp_path):
    assert load_weak_preds(RunLayout(tmp_path / "nothing")) == {}
    preds = load_weak_preds(_write_run(tmp_path))
    assert preds == {"weak": {"s1": 0.75, "s2": 0.6, "s3": 0.3}}


def test_write_viewer(tmp_path):
    rd = _write_run(tmp_path)
    out = write_viewer(rd)
    assert out == rd.root / "debates.html"
    html = out.read_text(encoding="utf-8")
    assert "Rebuttal by A." in html and "s9" not in html  # failed debates are left out
    assert "weak: P(1)=0.750" in html and XSS not in html
    other = write_viewer(rd, tmp_path / "sub" / "v.html")
    assert other.exists()


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (apt-get install chromium)")
def test_renders_in_headless_chromium(tmp_path):
    page = tmp_path / "v.html"
    page.write_text(render_html(sample_set(), PREDS, title="viewer check"), encoding="utf-8")
    flags = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--window-size=1400,1000"]

    def run(*extra: str) -> subprocess.CompletedProcess:
        with tempfile.TemporaryDirectory() as prof:
            return subprocess.run(flags + [f"--user-data-dir={prof}", *extra, page.as_uri()],
                                  capture_output=True, text=True, timeout=120)

    png = tmp_path / "v.png"
    run(f"--screenshot={png}")
    assert png.exists() and png.stat().st_size > 20_000, "screenshot missing or blank"
    dom = run("--dump-dom").stdout
    assert "Rebuttal by A." in dom
    # The injected text stayed text: the only script element is the viewer's own, and the
    # filter script ran (it fills in the count), so scripts were enabled during the check.
    assert len(re.findall(r"<script", dom, re.I)) == 1
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom
    assert "3 of 3 debates" in dom
    # The filter script works: pre-tick "weak model wrong"; only s2 (weak said 1, gold 0) stays.
    page.write_text(page.read_text().replace('id="wrong"', 'id="wrong" checked'), encoding="utf-8")
    dom = run("--dump-dom").stdout
    assert "1 of 3 debates" in dom
    shown = [a for a in dom.split("<article")[1:] if not a.startswith(' class="debate hidden"')]
    assert len(shown) == 1 and 'class="sid">s2<' in shown[0]
    # The protocol filter: only the consultancy transcript stays.
    mixed = sample_set() + [transcript("s4", ["Only I speak."], protocol="consultancy")]
    html = render_html(mixed, PREDS).replace('<option value="consultancy">', '<option value="consultancy" selected>')
    page.write_text(html, encoding="utf-8")
    dom = run("--dump-dom").stdout
    assert "1 of 4 debates" in dom
    if shutil.which("identify"):  # optional: the PNG has the requested size
        assert "1400x1000" in subprocess.run(["identify", str(png)], capture_output=True, text=True).stdout
