"""``napster-peer --get "NAME or HASH"``: search, download, exit 0 once the file is in place.

How scripts, tests and benchmarks download. It shares what it has while it runs (so it is a
source for others too), resumes an unfinished download of the same file left by an earlier
run (same ``--data-dir``), and on SIGINT/SIGTERM saves its state and exits 1; running the
same command again continues where it stopped.
"""

from __future__ import annotations

import re
import sys
import time
from typing import TextIO

from PySide6.QtCore import QCoreApplication, QObject, QTimer

from app.download.problems import describe_folder_problem
from app.download.transfer import Transfer, TransferState
from app.network import protocol as p
from app.peer import PeerConfig, PeerNode
from app.units import human_size

_HASH = re.compile(r"^[0-9a-f]{64}$")
#: How long to wait for the index server before giving up.
JOIN_DEADLINE_S = 30.0
#: Exit codes: done, failed, nothing to download / bad query.
EXIT_DONE, EXIT_FAILED, EXIT_NOT_FOUND = 0, 1, 2


class OneShotDownload(QObject):
    """Drives one download through a PeerNode and reports it on a stream."""

    def __init__(
        self,
        node: PeerNode,
        query: str,
        out: TextIO,
        parent: QObject | None = None,
        play: bool = False,
    ):
        super().__init__(parent)
        self.node = node
        #: print a local stream URL a player can read while the file downloads, and keep
        #: serving it after the download until interrupted
        self.play = play
        self.query = query.strip()
        self.out = out
        self.exit_code: int | None = None
        self.transfer_id: str | None = None
        self._asked = False  # the search (or SOURCES) has been sent
        self._tty = out.isatty()
        self._last_line = 0.0
        self._join_timer = QTimer(self)
        self._join_timer.setSingleShot(True)
        self._join_timer.timeout.connect(self._join_too_slow)
        node.client.joined.connect(self._on_joined)
        node.search_finished.connect(self._on_results)
        node.search_failed.connect(lambda _id, message: self._finish(EXIT_FAILED, message))
        node.transfers.transfer_changed.connect(self._on_changed)
        node.transfers.transfer_finished.connect(self._on_finished)

    def start(self) -> None:
        self._join_timer.start(int(JOIN_DEADLINE_S * 1000))
        resumed = self._resume_by_hash()
        if resumed is not None:
            self._follow(resumed, "Resuming")

    def _resume_by_hash(self) -> Transfer | None:
        """An unfinished download of that hash in the queue (a run that was stopped)."""
        if not _HASH.match(self.query):
            return None
        found = [
            t
            for t in self.node.transfers.transfers()
            if t.hash == self.query and t.state is not TransferState.DONE
        ]
        return found[0] if found else None

    def _on_joined(self, address: str, _count: int) -> None:
        self._join_timer.stop()
        # Asked once: a question the index left unanswered when its connection was lost is
        # asked again of the next server by the client itself.
        if self.transfer_id is None and not self._asked:
            self._asked = True
            self.say(f"Joined the index as {address}; searching for {self.query!r}")
            if _HASH.match(self.query) and self.node.client.sources_supported:
                self.node.client.sources(self.query)  # who holds it, under any name
            else:
                self.node.search(self.query[: p.MAX_QUERY_CHARS], p.MAX_SEARCH_LIMIT)

    def _join_too_slow(self) -> None:
        if self.transfer_id is None:
            servers = self.node.config.servers_text()
            if len(self.node.config.servers) > 1:
                self._finish(EXIT_FAILED, f"Cannot reach any of the index servers {servers}.")
            else:
                self._finish(EXIT_FAILED, f"Cannot reach the index server at {servers}.")

    def _on_results(self, _request_id: int, results: list[p.SearchResult]) -> None:
        if self.transfer_id is not None:
            return
        chosen = self._choose(results)
        if chosen is None:
            return
        transfer_id = self.node.download(chosen)
        transfer = self.node.transfers.get(transfer_id)
        self._follow(transfer, "Downloading")

    def _choose(self, results: list[p.SearchResult]) -> p.SearchResult | None:
        if _HASH.match(self.query):
            matches = [r for r in results if r.hash == self.query]
        else:
            matches = [r for r in results if r.name.casefold() == self.query.casefold()]
            if not matches and len(results) == 1:
                matches = results
        if not matches:
            if results:
                self.say(f"No file is named exactly {self.query!r}; these match:")
                for result in results[:20]:
                    self.say(f"  {p.printable(result.name)} ({human_size(result.size)})")
            self._finish(EXIT_NOT_FOUND, f"No peer has a file named {self.query!r}.")
            return None
        # The same name can stand for several files: take the one most peers hold.
        return max(matches, key=lambda r: len(r.peers))

    def _follow(self, transfer: Transfer | None, verb: str) -> None:
        if transfer is None:
            self._finish(EXIT_FAILED, "The download could not be queued.")
            return
        self.transfer_id = transfer.id
        self._join_timer.stop()
        if transfer.state in (TransferState.PAUSED, TransferState.FAILED):
            self.node.transfers.resume(transfer.id)
        self.say(
            f"{verb} {p.printable(transfer.name)} ({human_size(transfer.size)}) "
            f"from {len(transfer.sources)} source(s)"
        )
        if self.play:
            url = self.node.stream_url(transfer.id)
            self.say(f"Stream: {url}")
            self.say("Open it in a player (mpv, VLC); it plays while the file downloads.")
        if transfer.state is TransferState.DONE:
            self._finish(EXIT_DONE, f"Already downloaded: {transfer.final_path}")

    def _on_changed(self, transfer_id: str) -> None:
        if transfer_id != self.transfer_id:
            return
        transfer = self.node.transfers.get(transfer_id)
        if transfer is None:
            self._finish(EXIT_FAILED, "The download was cancelled.")
            return
        if transfer.state is TransferState.FAILED:
            self._finish(EXIT_FAILED, transfer.error or "The download failed.")
            return
        now = time.monotonic()
        if now - self._last_line < (0.5 if self._tty else 5.0):
            return
        self._last_line = now
        line = progress_line(transfer)
        if self._tty:
            self.out.write("\r" + line.ljust(79))
            self.out.flush()
        else:
            self.say(line)

    def _on_finished(self, transfer_id: str, path: str, _digest: object) -> None:
        if transfer_id != self.transfer_id:
            return
        if self.play:
            self.say(f"Downloaded {path}; still serving the stream (Ctrl+C to stop)")
            self.exit_code = EXIT_DONE  # a later interrupt ends it as done
            return
        self._finish(EXIT_DONE, f"Downloaded {path}")

    def say(self, text: str) -> None:
        if self._tty and self._last_line:
            self.out.write("\n")
            self._last_line = 0.0
        print(text, file=self.out, flush=True)

    def _finish(self, code: int, message: str) -> None:
        if self.exit_code is not None:
            return
        self.exit_code = code
        stream = self.out if code == EXIT_DONE else sys.stderr
        if self._tty and self._last_line:
            self.out.write("\n")
        print(message if code == EXIT_DONE else f"napster-peer: {message}", file=stream, flush=True)
        QCoreApplication.exit(code)


def progress_line(transfer: Transfer) -> str:
    """``42% 1.2 GB of 2.9 GB, 35.1 MB/s, 48 s left`` (or what it is waiting for)."""
    if transfer.state is TransferState.WAITING:
        return f"Waiting to retry: {transfer.error}"
    if transfer.state is not TransferState.DOWNLOADING:
        return f"{transfer.state.value.capitalize()} ..."
    text = (
        f"{transfer.progress * 100:3.0f}% {human_size(transfer.done_bytes)} of "
        f"{human_size(transfer.size)}, {human_size(transfer.speed)}/s, "
        f"{transfer.sources_active} of {len(transfer.sources)} sources"
    )
    eta = transfer.eta_seconds
    return text if eta is None else f"{text}, {eta:.0f} s left"


def run_get(config: PeerConfig, query: str, play: bool = False) -> int:
    """The ``--get`` mode: exit code 0 once the verified file is in place."""
    from app.quit_signals import QuitOnSignals
    from app.runtime import setup_logging

    app = QCoreApplication.instance() or QCoreApplication(sys.argv[:1])
    setup_logging()
    node = PeerNode(config)
    problems = node.folder_problems()
    for problem, folder, error in problems:
        print(f"napster-peer: {describe_folder_problem(problem, folder, error)}", file=sys.stderr)
    if problems:
        return EXIT_FAILED
    try:
        node.start()
    except OSError as exc:
        print(f"napster-peer: {exc}", file=sys.stderr)
        return EXIT_FAILED
    job = OneShotDownload(node, query, sys.stdout, play=play)
    stopped_by_signal = []

    def on_signal() -> None:
        if job.exit_code == EXIT_DONE:  # --play after the download: just stop serving
            app.exit(EXIT_DONE)
            return
        stopped_by_signal.append(True)
        app.exit(EXIT_FAILED)

    quitter = QuitOnSignals(on_signal)
    job.start()
    code = app.exec() if job.exit_code is None or play else job.exit_code
    node.stop()
    quitter.uninstall()
    if stopped_by_signal:
        print("napster-peer: stopped; the same command resumes the download", file=sys.stderr)
    return code
