"""Polling for a condition that another thread or process makes true."""
import time


def wait_for(condition, timeout: float = 120.0, what: str = "the condition"):
    """`condition()`'s first truthy value, polled every 0.1 s; AssertionError after `timeout` seconds."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")
