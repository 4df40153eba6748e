"""A service manager's stop (SIGTERM) as KeyboardInterrupt, held back while a tick commits: the commit
finishes (or rolls back) first, so the database is never interrupted mid-query."""

from __future__ import annotations

from contextlib import contextmanager


class StopRequest:
    def __init__(self) -> None:
        self.guarded = 0
        self.pending = False

    def handler(self, signum, frame) -> None:
        if self.guarded:
            self.pending = True
            return
        raise KeyboardInterrupt

    @contextmanager
    def guard(self):
        """Run the block whole; a stop that arrived meanwhile is raised once it is done."""
        self.guarded += 1
        try:
            yield
        finally:
            self.guarded -= 1
            if not self.guarded and self.pending:
                self.pending = False
                raise KeyboardInterrupt


    @contextmanager
    def finishing(self):
        """Run the block whole and let a stop that arrived meanwhile go: the work it would stop is done."""
        self.guarded += 1
        try:
            yield
        finally:
            self.guarded -= 1
            if not self.guarded:
                self.pending = False


STOP = StopRequest()
