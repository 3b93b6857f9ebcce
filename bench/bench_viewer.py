"""Debate viewer at the paper's scale: a synthetic run of N transcripts (default 60,000,
the paper config's ~11,000 samples x 4 debates + consultancy + market-making), its
viewer written by w2s_run.report.viewer.write_viewer, then opened from disk in headless
Chromium, side by side with a 300-transcript run (the demo's size).

    .venv/bin/python bench/bench_viewer.py [--sizes 300 60000] [--keep DIR]

Per size: the time to write the viewer (and its peak RSS, in its own process), the file
sizes (page, index, search index, data files), and in Chromium (DevTools protocol over a
pipe; --enable-precise-memory-info): the page's own time to first render
(performance.now() when the first page of results is laid out, from navigation start),
the JS heap at that moment and after a forced GC, the renderer process's RSS, and the
time of these actions, each from the event to the page laid out: next page, a protocol
filter, then its last page, a text search of two common words (loads their search shards),
a rarer word, an id prefix (10 samples), the table sorted by a labeller's correctness, and a
permalink to one debate.
Medians of --repeats cold opens. Prints a table; writes bench/results/viewer.json.

The synthetic run and the Chromium driver are also used by tests/test_viewer.py.
"""
from __future__ import annotations

import argparse
import fcntl
import json
import os
import random
import re
import resource
import select
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--mute-audio", "--window-size=1400,1000"]

WORDS = ("the a of to and in is that it for on as with was by this be are from at or an which not but "
         "energy cell water light heat plant animal force mass gravity acid base electron atom molecule "
         "answer question correct because evidence therefore however claim argument opponent position "
         "supports contradicts reasoning example temperature pressure volume chemical reaction species "
         "organism evolution protein membrane nucleus orbit planet solar carbon oxygen hydrogen").split()


ROLES = ["opening", "counter", "rebuttal"]

# A Zipf-distributed tail of RARE pseudo-words (one word in RARE_SHARE), so the search index
# meets a vocabulary like real text's: a few words in every transcript, most in a handful.
_SYLLABLES = "ba ce di fo gu ha ke li mo nu pa re si to vu za ne ri lo ka".split()
RARE = [_SYLLABLES[i % 20] + _SYLLABLES[i // 20 % 20] + _SYLLABLES[i // 400 % 20] + str(i // 8000 or "")
        for i in range(20000)]
RARE_SHARE = 0.15
_RARE_CUM = list(__import__("itertools").accumulate(1 / (r + 1) for r in range(len(RARE))))


def _words(rng: random.Random, n: int) -> str:
    out = rng.choices(WORDS, k=n)
    m = int(n * RARE_SHARE + rng.random())  # rounded at random: RARE_SHARE on average
    for j, w in zip(rng.sample(range(n), m), rng.choices(RARE, cum_weights=_RARE_CUM, k=m)):
        out[j] = w
    return " ".join(out).capitalize() + "."


def synthetic_transcripts(n: int, seed: int = 0, words_per_turn: int = 80):
    """n transcript records (dicts in the store's schema) shaped like the paper config:
    per sample 4 debates (3 turns) + 1 consultancy + 1 market-making (1 turn each);
    SciQ-like sample texts of ~40-70 words. Also returns the weak predictions of six
    labellers, {labeller: {sample_id: P(1)}}, and the splits, {sample_id: split}: samples
    cycle weak_train, transfer, test, test, transfer (labellers predict on transfer and test)."""
    from w2s_base.config import SamplingParams

    rng = random.Random(seed)
    sampling = SamplingParams().model_dump()
    plan = [("debate", k, 3) for k in range(4)] + [("consultancy", 0, 1), ("market_making", 0, 1)]
    labellers = ["weak", "weak+debate", "finetune-ensemble+debate", "debate-ensemble+debate",
                 "consultancy", "market-making"]
    preds: dict[str, dict[str, float]] = {name: {} for name in labellers}
    splits: dict[str, str] = {}
    out, s = [], 0
    while len(out) < n:
        sid, gold = f"sciq-{s:06d}", rng.randint(0, 1)
        text = f"Q: {_words(rng, rng.randint(12, 30))} A: {_words(rng, rng.randint(2, 6))}\n{_words(rng, 30)}"
        splits[sid] = ("weak_train", "transfer", "test", "test", "transfer")[s % 5]
        for name in labellers:
            p = round(rng.random(), 4)
            if splits[sid] != "weak_train":
                preds[name][sid] = p
        for protocol, k, n_turns in plan:
            if len(out) == n:
                break
            a_label = rng.randint(0, 1)
            turns = []
            for i in range(n_turns):
                side = "A" if protocol != "debate" or i % 2 == 0 else "B"
                w = max(5, int(rng.gauss(words_per_turn, words_per_turn / 5)))
                turns.append({"index": i, "side": side,
                              "role": "consult" if protocol != "debate" else ROLES[min(i, 2)],
                              "position_label": a_label if side == "A" else 1 - a_label, "text": _words(rng, w),
                              "prompt_tokens": 300, "completion_tokens": int(w * 1.3), "finish_reason": "stop"})
            out.append({"key": f"{s:06d}{protocol[:2]}{k}{rng.getrandbits(40):010x}", "sample_id": sid,
                        "task": "sciq", "sample_text": text, "positions": ["incorrect", "correct"],
                        "gold_label": gold, "debate_index": k, "protocol": protocol, "num_turns": n_turns,
                        "a_label": a_label, "turns": turns, "model": "Qwen/Qwen2.5-14B-Instruct|vllm",
                        "backend": "vllm", "prompt_set": "paper", "prompt_hash": "0123456789ab",
                        "sampling": sampling, "seed": 0, "seconds": round(rng.uniform(1, 9), 2)})
        s += 1
    return out, preds, splits


def synthetic_run(root: Path, n: int, seed: int = 0):
    """A run folder with n synthetic transcripts, its splits.json and six labellers' weak
    predictions."""
    from w2s_base.runfolder.layout import RunLayout
    from weak.labels import LabellerResult

    layout = RunLayout(Path(root))
    records, preds, splits = synthetic_transcripts(n, seed)
    layout.transcripts.parent.mkdir(parents=True, exist_ok=True)
    with layout.transcripts.open("w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    layout.splits.write_text(json.dumps({part: [s for s, x in splits.items() if x == part]
                                         for part in ("weak_train", "transfer", "test")}))
    for name, p in preds.items():
        lab = LabellerResult(name=name, protocol="debate", aggregate="mean", members=["seed0"],
                             transfer_p1={s: x for s, x in p.items() if splits[s] == "transfer"},
                             test_p1={s: x for s, x in p.items() if splits[s] == "test"}, member_test_p1={})
        layout.labeller_json(name).parent.mkdir(parents=True, exist_ok=True)
        layout.labeller_json(name).write_text(lab.model_dump_json())
    return layout


class Chromium:
    """Headless Chromium driven over the DevTools protocol on a pipe
    (--remote-debugging-pipe: commands on fd 3, replies on fd 4, NUL-terminated JSON).
    No extra packages, no network port."""

    def __init__(self, *extra: str, binary: Path = CHROMIUM, timeout: float = 60):
        self.timeout, self._id, self._buf = timeout, 0, b""
        self._profile = tempfile.mkdtemp(prefix="viewer-chromium-")
        cmd_r, self._cmd_w = os.pipe()
        self._out_r, out_w = os.pipe()
        # Our ends must not leak into the child; the child's ends become fds 3 and 4.
        os.set_inheritable(self._cmd_w, False)
        os.set_inheritable(self._out_r, False)
        hi_r, hi_w = fcntl.fcntl(cmd_r, fcntl.F_DUPFD, 10), fcntl.fcntl(out_w, fcntl.F_DUPFD, 10)

        def to_3_4():  # in the child, before exec
            os.dup2(hi_r, 3)
            os.dup2(hi_w, 4)
            os.close(hi_r)
            os.close(hi_w)

        self.proc = subprocess.Popen(
            [str(binary), *FLAGS, *extra, f"--user-data-dir={self._profile}", "--remote-debugging-pipe",
             "about:blank"], preexec_fn=to_3_4, close_fds=False,  # close_fds would close 3 and 4
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for fd in (cmd_r, out_w, hi_r, hi_w):
            os.close(fd)
        target = None
        deadline = time.monotonic() + timeout
        while target is None and time.monotonic() < deadline:
            pages = [t for t in self.call("Target.getTargets")["targetInfos"] if t["type"] == "page"]
            target = pages[0]["targetId"] if pages else None
            if target is None:
                time.sleep(0.1)
        if target is None:
            raise RuntimeError("headless Chromium opened no page")
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.call("Page.enable", session=True)
        self.call("Runtime.enable", session=True)

    def call(self, method: str, session: bool = False, **params):
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params}
        if session:
            msg["sessionId"] = self.session
        os.write(self._cmd_w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            while b"\0" in self._buf:
                raw, self._buf = self._buf.split(b"\0", 1)
                reply = json.loads(raw)
                if reply.get("id") == self._id:
                    if "error" in reply:
                        raise RuntimeError(f"{method}: {reply['error']}")
                    return reply["result"]
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._out_r], [], [], left)[0]:
                raise TimeoutError(f"{method}: no reply in {self.timeout}s")
            chunk = os.read(self._out_r, 1 << 20)
            if not chunk:
                raise RuntimeError(f"{method}: Chromium exited (rc {self.proc.poll()})")
            self._buf += chunk

    def eval(self, expression: str):
        """The value of a JS expression in the page (promises are awaited)."""
        r = self.call("Runtime.evaluate", session=True, expression=expression, awaitPromise=True,
                      returnByValue=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"JS error in {expression[:80]!r}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def wait_for(self, expression: str, timeout: float | None = None):
        """Poll a JS expression until it is truthy; return its value."""
        ms = int(1000 * (timeout or self.timeout))
        return self.eval(f"""new Promise((ok, no) => {{ const t0 = performance.now();
            (function poll() {{ let v; try {{ v = ({expression}); }} catch (e) {{ v = null; }}
              if (v) ok(v); else if (performance.now() - t0 > {ms}) no(new Error('timed out'));
              else setTimeout(poll, 5); }})(); }})""")

    def open(self, url: str) -> None:
        """Navigate, and return once the new document is the one that evaluates."""
        try:
            self.eval("window.__benchOld = true")  # marks the document we leave
        except RuntimeError:
            pass
        self.call("Page.navigate", session=True, url=url)
        base = url.split("#")[0]
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                if self.eval(f"!window.__benchOld && location.href.split('#')[0] === {json.dumps(base)}"):
                    return
            except RuntimeError:  # the old document's context went away under us
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"navigation to {url} did not commit")
            time.sleep(0.02)

    def renders(self) -> int:
        return int(self.eval("+document.documentElement.getAttribute('data-renders') || 0"))

    def wait_render(self, after: int = 0) -> int:
        """Wait until the page has rendered more than `after` times."""
        return int(self.wait_for(f"(+document.documentElement.getAttribute('data-renders') || 0) > {after}"
                                 f" && +document.documentElement.getAttribute('data-renders')"))

    def renderer_rss_mb(self) -> float:
        """Resident memory of this browser's renderer processes (Linux /proc), MB."""
        parent, cmds = {}, {}
        for proc in Path("/proc").iterdir():
            if proc.name.isdigit():
                try:
                    parent[int(proc.name)] = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
                    cmds[int(proc.name)] = (proc / "cmdline").read_bytes()
                except (OSError, ValueError, IndexError):
                    continue
        total = 0
        for pid, cmd in cmds.items():
            p = pid
            while p in parent and p != self.proc.pid:
                p = parent[p]
            if p == self.proc.pid and b"--type=renderer" in cmd:
                try:
                    total += int(re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text()).group(1))
                except (OSError, AttributeError):
                    continue
        return total / 1024

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._cmd_w, self._out_r):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _sizes(page: Path) -> dict:
    from w2s_run.report.viewer import data_dir_of
    data = data_dir_of(page)
    pages, shards = sorted(data.glob("p*.js")), [p.stat().st_size for p in data.glob("t*.js")]
    return {"html_bytes": page.stat().st_size, "index_bytes": (data / "index.js").stat().st_size,
            "search_bytes": sum(shards), "search_shards": len(shards), "search_shard_max_bytes": max(shards),
            "data_files": len(pages), "data_file_max_bytes": max(p.stat().st_size for p in pages),
            "data_bytes": sum(p.stat().st_size for p in pages),
            "transcripts_jsonl_bytes": (page.parent / "debate" / "transcripts.jsonl").stat().st_size}


def _write(root: str) -> None:
    """Child process: write the viewer of the run at root; print seconds and peak RSS."""
    from w2s_base.runfolder.layout import RunLayout
    from w2s_run.report.viewer import write_viewer
    t = time.perf_counter()
    write_viewer(RunLayout(Path(root)))
    print(json.dumps({"write_s": time.perf_counter() - t,
                      "write_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def _browser(page: Path, repeats: int, n: int) -> dict:
    """Chromium figures: medians over `repeats` cold opens (a fresh browser each)."""
    import statistics
    runs = []
    for _ in range(repeats):
        with Chromium("--enable-precise-memory-info") as b:
            b.open(page.as_uri())
            b.wait_render(0)
            r = {"first_render_ms": float(b.eval("document.documentElement.getAttribute('data-first-render-ms')")),
                 "heap_at_first_render_mb": int(b.eval("document.documentElement.getAttribute('data-js-heap-bytes')"))
                 / 2**20,
                 "articles": b.eval("document.querySelectorAll('article').length"),
                 "count": b.eval("document.getElementById('count').textContent")}
            r["renderer_rss_mb"] = b.renderer_rss_mb()
            b.call("HeapProfiler.collectGarbage", session=True)
            r["heap_after_gc_mb"] = b.eval("performance.memory.usedJSHeapSize") / 2**20
            actions = {  # each: the event a user's action fires, until that page is laid out
                "next_page_ms": "document.getElementById('next').click();",
                "filter_ms": "const s = document.getElementById('protocol'); s.value = '1';"
                             " s.dispatchEvent(new Event('change'));",
                "last_page_ms": "document.getElementById('last').click();",
                "search_ms": "const q = document.getElementById('q'); q.value = 'energy water';"
                             " q.dispatchEvent(new Event('input'));",
                "rare_search_ms": f"const q = document.getElementById('q'); q.value = '{RARE[300]}';"
                                  " q.dispatchEvent(new Event('input'));",
                "id_search_ms": f"const q = document.getElementById('q'); q.value = 'sciq-{n // 12:06d}'.slice(0, -1);"
                                " q.dispatchEvent(new Event('input'));",
                "table_sort_ms": "document.getElementById('q').value = ''; document.getElementById('protocol').value = '';"
                                 " document.getElementById('view').value = 'table';"
                                 " const s = document.getElementById('sort'); s.value = 'w0';"
                                 " s.dispatchEvent(new Event('change'));",
                # a debate 90 % down the debates' display order: its data file is not loaded yet
                "permalink_ms": f"location.hash = '#sample/sciq-{n // 6 * 9 // 10:06d}/debate/2';",
            }
            for name, js in actions.items():
                before = b.renders()
                t = time.perf_counter()
                b.eval("{ " + js + " }")
                b.wait_render(before)
                r[name] = (time.perf_counter() - t) * 1000
                r[name.replace("_ms", "_count")] = b.eval("document.getElementById('count').textContent")
                r[name.replace("_ms", "_paint_ms")] = float(b.eval(
                    "document.documentElement.getAttribute('data-render-ms')"))
            r["debounce_ms"] = int(b.eval("document.documentElement.getAttribute('data-debounce-ms')"))
            r["permalink_shown"] = b.eval("document.querySelector('article .sid').textContent")
            b.call("HeapProfiler.collectGarbage", session=True)
            r["heap_after_actions_gc_mb"] = b.eval("performance.memory.usedJSHeapSize") / 2**20
            r["renderer_rss_after_actions_mb"] = b.renderer_rss_mb()
            runs.append(r)
    out = {k: statistics.median(r[k] for r in runs) if isinstance(runs[0][k], float) else runs[0][k]
           for k in runs[0]}
    out["repeats"] = repeats
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[300, 60000])
    ap.add_argument("--repeats", type=int, default=3, help="cold browser opens per size (median)")
    ap.add_argument("--keep", type=Path, help="write the runs here (default: a temp folder, removed)")
    ap.add_argument("--write-only", metavar="ROOT", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.write_only:
        return _write(args.write_only)
    if not CHROMIUM.exists():
        sys.exit(f"needs {CHROMIUM} (apt-get install chromium)")
    base = args.keep or Path(tempfile.mkdtemp(prefix="bench-viewer-"))
    res = {}
    try:
        for n in args.sizes:
            root = base / f"synthetic-{n}"
            t = time.perf_counter()
            synthetic_run(root, n)
            made = time.perf_counter() - t
            w = subprocess.run([sys.executable, __file__, "--write-only", str(root)], capture_output=True,
                               text=True, check=True)
            r = {"transcripts": n, "make_run_s": made, **json.loads(w.stdout.strip().splitlines()[-1])}
            r.update(_sizes(root / "debates.html"))
            r.update(_browser(root / "debates.html", args.repeats, n))
            res[str(n)] = r
            print(f"[bench_viewer] {n}: {json.dumps(r)}", file=sys.stderr)
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)
    version = subprocess.run([str(CHROMIUM), "--version"], capture_output=True, text=True).stdout.strip()
    from isolated import save_results
    path = save_results("viewer", {"sizes": args.sizes, "repeats": args.repeats, "chromium": version,
                                   "cpus": os.cpu_count()}, res)
    mb = lambda b: f"{b / 2**20:.2f} MB" if b >= 2**20 else f"{b / 1024:.1f} KB"  # noqa: E731
    rows = [
        ("transcripts.jsonl (input)", lambda r: mb(r["transcripts_jsonl_bytes"])),
        ("write_viewer time / peak RSS", lambda r: f"{r['write_s']:.1f} s / {r['write_peak_rss_mb']:.0f} MB"),
        ("debates.html", lambda r: mb(r["html_bytes"])),
        ("debates/index.js", lambda r: mb(r["index_bytes"])),
        ("search index: shards / total / largest shard (a search loads its words' shards)",
         lambda r: f"{r['search_shards']} / {mb(r['search_bytes'])} / {mb(r['search_shard_max_bytes'])}"),
        ("data files: count / total / largest", lambda r: f"{r['data_files']} / {mb(r['data_bytes'])}"
                                                          f" / {mb(r['data_file_max_bytes'])}"),
        ("first render (navigation start -> page 1 laid out)", lambda r: f"{r['first_render_ms']:.0f} ms"),
        ("JS heap at first render", lambda r: f"{r['heap_at_first_render_mb']:.1f} MB"),
        ("JS heap after GC", lambda r: f"{r['heap_after_gc_mb']:.1f} MB"),
        ("renderer process RSS at first render", lambda r: f"{r['renderer_rss_mb']:.0f} MB"),
        ("next page -> rendered (same data file)", lambda r: f"{r['next_page_ms']:.0f} ms"),
        ("protocol filter (consultancy) -> rendered", lambda r: f"{r['filter_ms']:.0f} ms"),
        ("then last page -> rendered", lambda r: f"{r['last_page_ms']:.0f} ms"),
        ("then first text search, two common words -> rendered (incl. typing debounce)",
         lambda r: f"{r['search_ms']:.0f} ms ({r['debounce_ms']} ms)"),
        ("then a rarer word -> rendered", lambda r: f"{r['rare_search_ms']:.0f} ms"),
        ("then an id prefix -> rendered", lambda r: f"{r['id_search_ms']:.0f} ms"),
        ("table sorted by a labeller's correctness -> rendered", lambda r: f"{r['table_sort_ms']:.0f} ms"),
        ("permalink to one debate -> rendered", lambda r: f"{r['permalink_ms']:.0f} ms"),
        ("DOM build + layout of one page of 50", lambda r: f"{r['next_page_paint_ms']:.0f} ms"),
        ("JS heap after these, after GC", lambda r: f"{r['heap_after_actions_gc_mb']:.1f} MB"),
        ("renderer process RSS after these", lambda r: f"{r['renderer_rss_after_actions_mb']:.0f} MB"),
        ("articles on page 1 / count", lambda r: f"{r['articles']} / {r['count']}"),
    ]
    sizes = list(res)
    print(f"| {' | '.join(['', *(f'{int(n):,} transcripts' for n in sizes)])} |")
    print("|---|" + "---:|" * len(sizes))
    for label, f in rows:
        print(f"| {label} | " + " | ".join(f(res[n]) for n in sizes) + " |")
    print(f"\n{version}, {os.cpu_count()} CPUs; medians of {args.repeats} cold opens; results: {path}")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "bench"))
    main()
