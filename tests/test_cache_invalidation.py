"""Stage caches cannot serve stale work: a change to what a model reads (a sample's
text under the same id, the over-long policy, the context length, the transcript
reserve) or to how it is trained (a loss hyperparameter) retrains exactly the models
it reaches, and a rerun of the same config trains nothing.

The pipeline runs for real (data fitting with the real tokenizers, splits, debates
from the fake backend, caches, report); the trainer is a stand-in that records which
models are fit, because which models are retrained is what is tested here, not
learning, and real fits would cost minutes for the same answer. Its predictions are
a constant, so a retrained weak member gives its students the same labels: a student
retrains here only through its own key (texts, loss, settings)."""
import json

import numpy as np
import pytest
import yaml

import run

N = 8  # per split; the data file holds exactly 3 * N samples, so every sample is in a split
LONG = "long-0"
MEMBERS = {"weak none/minilm-l6/seed0", "weak debate/minilm-l6/seed0-debate0"}
STUDENTS = {f"strong {lab}|{loss} seed 0" for lab in ("weak", "weak+debate") for loss in ("xent", "logconf")}
CEILING = {"strong ceiling seed 0"}
# the audit's out-of-fold ceiling (strong/stage.py ceiling_out_of_fold): reads transfer only
AUDIT = {"strong ceiling out-of-fold 1/2", "strong ceiling out-of-fold 2/2"}


def _rows(long_words: int = 0) -> list[dict]:
    rows = [{"id": f"s-{i}", "text": f"Claim {i}: the number {i * 7} is {'odd' if i % 3 else 'even'}.",
             "label": int(bool(i * 7 % 2) == bool(i % 3))} for i in range(3 * N - (1 if long_words else 0))]
    if long_words:
        # over-long for the weak reader (64 tokens) and for the strong one (96): the
        # policy decides its text; a label-bearing end, as the cut_middle rule expects
        words = " ".join(f"word{j}" for j in range(long_words))
        rows.append({"id": LONG, "text": f"Preamble {words}. In short the claim holds.", "label": 1})
    return rows


def _write(path, rows) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


class Fits:
    """Stand-in for ModelTrainer (weak and strong stages): records each fit's description."""
    done: list[str] = []

    def __init__(self, *a, **k):
        pass

    def train(self, texts, p1, loss, seed, desc="", adapter="", held_out=None):
        Fits.done.append(desc)

        class Clf:
            history = [1.0]
            eval_history = [{"step": 1, "loss": 0.7, "accuracy": 0.5}]

            def save(self, path):
                path.mkdir(parents=True, exist_ok=True)

            def predict(self, xs):
                return np.full(len(xs), 0.25)
        return Clf()

    def release(self):
        pass


@pytest.fixture
def pipeline(tmp_path, monkeypatch):
    """run(overrides) -> (the set of models fit, debates generated) for one rerun of
    the same run folder; `data` is the run's data file."""
    from fake_backend import EchoBackend

    import debate.backends
    import strong.stage
    import weak.stage
    monkeypatch.setattr(weak.stage, "ModelTrainer", Fits)
    monkeypatch.setattr(strong.stage, "ModelTrainer", Fits)
    monkeypatch.setattr(debate.backends, "make_backend", lambda cfg: EchoBackend())
    data = tmp_path / "data.jsonl"
    cfg = tmp_path / "inv.yaml"
    cfg.write_text(yaml.safe_dump({
        "name": "inv", "output_dir": str(tmp_path / "runs"),
        "data": {"task": "generic", "path": str(data), "n_weak_train": N, "n_transfer": N, "n_test": N,
                 "overlong": "cut_end"},
        "debate": {"prompts": "terse", "num_turns": 2, "sampling": {"max_new_tokens": 4}},
        "weak": {"model": "minilm-l6", "transcript_reserve": 16,
                 "labellers": [{"name": "weak"}, {"name": "weak+debate", "protocol": "debate"}],
                 "train": {"epochs": 1, "max_length": 64}},
        "strong": {"model": "smollm2-135m", "losses": ["xent", "logconf"],
                   "train": {"mode": "linear_probe", "epochs": 1, "max_length": 96}}}))
    rd = tmp_path / "runs" / "inv"

    def go(*overrides: str) -> tuple[set[str], int]:
        store = rd / "debate" / "transcripts.jsonl"
        before = len(store.read_text().splitlines()) if store.exists() else 0
        Fits.done = []
        args = ["--config", str(cfg)]
        for o in overrides:
            args += ["--set", o]
        assert run.main(args) == 0
        assert len(Fits.done) == len(set(Fits.done))  # nothing fit twice in one run
        return set(Fits.done), len(store.read_text().splitlines()) - before

    go.data, go.rd = data, rd
    return go


def _split_of(rd, sample_id: str) -> str:
    return next(k for k, ids in json.loads((rd / "splits.json").read_text()).items() if sample_id in ids)


def _readers_of(split: str) -> set[str]:
    """Every model that reads a sample of `split`: each weak member reads all three
    splits (it trains on weak_train and labels the others); students and the ceiling
    read transfer and test; the audit's out-of-fold ceiling transfer only (a sample there
    is held by one fold and trained on by the other)."""
    if split == "weak_train":
        return MEMBERS
    return MEMBERS | STUDENTS | CEILING | (AUDIT if split == "transfer" else set())


def test_an_unchanged_rerun_trains_nothing_and_a_loss_setting_retrains_only_its_students(pipeline):
    _write(pipeline.data, _rows())
    fit, debates = pipeline()
    assert fit == MEMBERS | STUDENTS | CEILING | AUDIT and debates == 3 * N
    assert pipeline() == (set(), 0)
    fit, debates = pipeline("strong.loss_settings.logconf.aux_coef=0.25")
    assert fit == {s for s in STUDENTS if "|logconf" in s} and debates == 0
    # and back: the earlier students' results were overwritten, so they retrain once more
    assert pipeline()[0] == {s for s in STUDENTS if "|logconf" in s}
    assert pipeline() == (set(), 0)


def test_a_weak_context_length_retrains_the_weak_members_only(pipeline):
    _write(pipeline.data, _rows())  # nothing over-long: the samples do not change
    pipeline()
    fit, debates = pipeline("weak.train.max_length=80")
    # the students read the same texts and (constant stand-in) the same labels
    assert fit == MEMBERS and debates == 0


@pytest.mark.parametrize("where", ["weak_train", "test"])
def test_a_new_text_under_the_same_id_retrains_exactly_its_readers(pipeline, where):
    rows = _rows()
    _write(pipeline.data, rows)
    pipeline()
    sample_id = json.loads((pipeline.rd / "splits.json").read_text())[where][0]
    row = next(r for r in rows if r["id"] == sample_id)
    row["text"] = row["text"].replace("Claim", "Statement")  # same id, same label
    _write(pipeline.data, rows)
    fit, debates = pipeline()
    assert _split_of(pipeline.rd, sample_id) == where  # the splits are the same
    assert fit == _readers_of(where) and debates == 1  # that sample's debate only
    assert pipeline() == (set(), 0)


def test_the_overlong_policy_retrains_the_readers_of_the_long_sample(pipeline):
    _write(pipeline.data, _rows(long_words=200))
    pipeline()  # cut_end: the long text is kept whole (each reader truncates it)
    fit, debates = pipeline("data.overlong=cut_middle")  # the same ids, another text
    assert fit == _readers_of(_split_of(pipeline.rd, LONG)) and debates == 1
    assert pipeline("data.overlong=cut_middle") == (set(), 0)


def test_the_transcript_reserve_under_cut_middle_retrains_the_readers_of_the_long_sample(pipeline):
    _write(pipeline.data, _rows(long_words=200))
    pipeline("data.overlong=cut_middle")
    # the weak reader is the tightest (64 tokens): its reserve sets where the long text is cut
    fit, debates = pipeline("data.overlong=cut_middle", "weak.transcript_reserve=24")
    assert fit == _readers_of(_split_of(pipeline.rd, LONG)) and debates == 1


def test_every_training_setting_is_in_the_fingerprint():
    """All of TrainConfig but what is declared not to change a result (a field added
    later is in without being listed), each with its value even at the default."""
    from w2s_base.config import LoraConfig, TrainConfig
    spec = TrainConfig().result_spec()
    assert set(spec) == set(TrainConfig.model_fields) - TrainConfig.NOT_IN_RESULT
    assert set(spec["lora"]) == set(LoraConfig.model_fields)
    assert spec["dtype"] == "float32"
    assert TrainConfig(lora={"dropout": 0.0}).result_spec() != spec
