"""A Hugging Face Hub that cannot be reached, as a person without a network meets it, on 127.0.0.1 only:
a port that accepts connections and never answers (a dead proxy, a filtered line), and one that
refuses them (no route). Also a file put into a Hugging Face cache folder in the layout
huggingface_hub itself writes, so "already downloaded" can be tested without a download."""

from __future__ import annotations

import shutil
import socket
import threading
from contextlib import contextmanager
from pathlib import Path

REVISION = "b" * 40


@contextmanager
def silent_endpoint():
    """http://127.0.0.1:PORT that accepts every connection and never sends a byte."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held, stop = [], threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:  # the 0.2 s timeout, or the socket closed at the end
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        for connection in held:
            connection.close()
        server.close()


@contextmanager
def refusing_endpoint():
    """http://127.0.0.1:PORT where nothing listens: every connection is refused at once."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now
    yield f"http://127.0.0.1:{port}"


def put_in_cache(cache: Path, repo: str, filename: str, content: Path) -> Path:
    """`content` as `filename` of `repo` in the Hugging Face cache folder `cache` (models--owner--name)."""
    folder = cache / f"models--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    (folder / "refs" / "main").write_text(REVISION)
    target = folder / "snapshots" / REVISION / filename
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(content, target)
    return target
