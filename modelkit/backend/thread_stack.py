"""A stack of contexts per thread: the active gradient tapes, the learning phases and graph
runs of the models running, the add_loss collectors. A model predicting or training on
one thread neither pauses nor feeds another thread's (tests/backend/test_thread_state.py)."""

import threading


class ThreadStack(threading.local):
    """`items`: this thread's list (innermost last); `top()`: its last item or None."""

    def __init__(self):
        self.items = []

    def top(self):
        items = self.items
        return items[-1] if items else None
