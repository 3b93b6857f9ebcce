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

    def __init__(self, fail_after_calls: int | None = None, delay_s: float = 0.0):
        self.calls = 0
        self.fail_after_calls = fail_after_calls
        self.delay_s = delay_s  # per call: a debate stage slow enough to be killed in

    def generate(self, conversations, params, seeds):
        if self.fail_after_calls is not None and self.calls >= self.fail_after_calls:
            raise KeyboardInterrupt  # a kill in the middle of the stage
        self.calls += 1
        import random
        if self.delay_s:
            import time
            time.sleep(self.delay_s)
        return [Generation(text=f"draw {random.Random(s).randint(0, 10**9)} for "
                                f"{len(c[-1]['content'])} chars", prompt_tokens=1,
                           completion_tokens=3, finish_reason="stop")
                for c, s in zip(conversations, seeds)]


class ContinuousSeededBackend(SeededBackend):
    """SeededBackend with continuous scheduling, as an engine whose requests finish at
    different times: the project's own driver (`drive_continuously`) on a queue whose
    every step answers one in-flight request drawn at random (from `order_seed`).
    Records the most requests it ever had in flight."""

    def __init__(self, order_seed: int = 0, fail_after_calls: int | None = None, delay_s: float = 0.0):
        super().__init__(fail_after_calls, delay_s)
        self.order_seed = order_seed
        self.most_live = 0
        self.continuous_calls = 0

    def generate_continuous(self, n, next_request, params, max_live):
        from debate.backends.base import drive_continuously
        self.continuous_calls += 1
        drive_continuously(_RandomOrderQueue(self), n, next_request, params, max_live)


class _RandomOrderQueue:
    def __init__(self, backend):
        import random
        self.backend, self.rng, self.in_flight = backend, random.Random(backend.order_seed), {}

    def add(self, tag, request, params):
        assert tag not in self.in_flight  # one request per conversation at a time
        self.in_flight[tag] = (request, params)
        self.backend.most_live = max(self.backend.most_live, len(self.in_flight))

    def step(self):
        tag = self.rng.choice(sorted(self.in_flight))
        request, params = self.in_flight.pop(tag)
        return [(tag, self.backend.generate([request.messages], params, [request.seed])[0])]

    def __len__(self):
        return len(self.in_flight)

    def abort(self):
        self.in_flight.clear()
