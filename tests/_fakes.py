"""Fakes shared by the tests."""


class FakeClock:
    """A fake ``time`` module: each timed step (two ``perf_counter``
    calls) lasts the next of ``durations``."""

    def __init__(self, durations):
        self.durations = list(durations)
        self.now, self.calls = 0.0, 0

    def perf_counter(self):
        if self.calls % 2:              # the end of a step
            self.now += self.durations.pop(0)
        self.calls += 1
        return self.now
