"""A deterministic stand-in for an LLM, for testing orchestration only: it echoes
which side and turn it was asked for. Real-model tests sit beside these."""
from debate.backends.base import Generation


class EchoBackend:
    name = "echo"
    model = "echo"

    def __init__(self, fail_on: str | None = None):
        self.calls = 0
        self.fail_on = fail_on
        self.batch_sizes: list[int] = []

    def generate(self, conversations, params, seeds):
        self.calls += 1
        self.batch_sizes.append(len(conversations))
        out = []
        for conv in conversations:
            user = conv[-1]["content"]
            if self.fail_on and self.fail_on in user:
                out.append(Generation(text="", prompt_tokens=0, completion_tokens=0,
                                      finish_reason="error", error="boom"))
                continue
            last = user.strip().splitlines()[-1]
            out.append(Generation(text=f"echo<{last}>", prompt_tokens=len(user.split()),
                                  completion_tokens=3, finish_reason="stop"))
        return out


class SeededBackend:
    """Samples its reply from each request's own seed, as vLLM does with per-request
    seeds: the text is a function of (conversation, seed) and nothing else."""
    name = "seeded"
    model = "seeded"

    def __init__(self, fail_after_calls: int | None = None):
        self.calls = 0
        self.fail_after_calls = fail_after_calls

    def generate(self, conversations, params, seeds):
        if self.fail_after_calls is not None and self.calls >= self.fail_after_calls:
            raise KeyboardInterrupt  # a kill in the middle of the stage
        self.calls += 1
        import random
        return [Generation(text=f"draw {random.Random(s).randint(0, 10**9)} for "
                                f"{len(c[-1]['content'])} chars", prompt_tokens=1,
                           completion_tokens=3, finish_reason="stop")
                for c, s in zip(conversations, seeds)]


class ContinuousSeededBackend(SeededBackend):
    """SeededBackend with continuous scheduling, as an engine whose requests finish at
    different times: each step answers one in-flight request drawn at random (from
    `order_seed`), and that conversation's next request joins the others at once.
    Records the most conversations it ever had in progress."""

    def __init__(self, order_seed: int = 0, fail_after_calls: int | None = None):
        super().__init__(fail_after_calls)
        self.order_seed = order_seed
        self.most_live = 0
        self.continuous_calls = 0

    def generate_continuous(self, n, next_request, params, max_live):
        import random
        self.continuous_calls += 1
        rng = random.Random(self.order_seed)
        in_flight, started = {}, 0
        while True:
            while started < n and len(in_flight) < max_live:
                request = next_request(started, None)
                if request is not None:
                    in_flight[started] = request
                started += 1
            if not in_flight:
                return
            self.most_live = max(self.most_live, len(in_flight))
            i = rng.choice(sorted(in_flight))
            request = in_flight.pop(i)
            [reply] = self.generate([request.messages], params, [request.seed])
            if (request := next_request(i, reply)) is not None:
                in_flight[i] = request
