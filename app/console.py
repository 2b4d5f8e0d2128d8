"""``napster-peer --cli``: the original console menu (JOIN, SEARCH, DOWNLOAD, QUIT) and more.

Standard input is read on a plain thread and handed to the Qt loop by a signal, so the peer
keeps serving uploads, connecting and downloading while the menu waits for typing: the menu
never waits for the network. What happens meanwhile (joined, a download's progress, done,
failed) is printed above the prompt, which is then shown again.
"""

from __future__ import annotations

import argparse
import re
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QT_TRANSLATE_NOOP, QCoreApplication, QObject, Signal

from app.config import PeerConfig, parse_host_port
from app.download.problems import describe_folder_problem
from app.download.transfer import Transfer, TransferState
from app.network import protocol as p
from app.peer import PeerNode
from app.units import human_size

MENU = QT_TRANSLATE_NOOP(
    "ConsoleMenu",
    """
Napster P2P
  1 JOIN      enter the network and share your folder
  2 SEARCH    find which peers have a file
  3 DOWNLOAD  download a file from a peer
  4 QUIT
  5 TRANSFERS see, pause, resume, retry or cancel downloads
""",
)
#: A plain (not terminal) output gets a progress line every this many percent.
PROGRESS_STEP = 10
#: A terminal gets a progress line at most this often per download (seconds).
TERMINAL_PROGRESS_INTERVAL = 2.0


class ConsoleMenu(QObject):
    """The console conversation: prompts, answers, and what the peer reports back."""

    line_received = Signal(str)
    input_closed = Signal()

    def __init__(self, config: PeerConfig, out=None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.config = config
        self.out = out or sys.stdout
        self.node: PeerNode | None = None
        self.results: list[p.SearchResult] = []
        self._answer: Callable[[str], None] | None = None
        self._prompt = ""
        self._search_id: int | None = None
        self._query = ""
        self._chosen: p.SearchResult | None = None
        self._progress_marks: dict[str, tuple[int, float]] = {}
        self._told_failures: set[tuple[str, str]] = set()
        self._tty = bool(getattr(self.out, "isatty", lambda: False)())
        self.line_received.connect(self._on_line)
        self.input_closed.connect(self.quit)

    # ------------------------------------------------------------ plumbing

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def notify(self, text: str) -> None:
        """Something happened while the user may be at a prompt: print it above the prompt."""
        if self._answer is not None:
            self.out.write("\r\x1b[K" if self._tty else "\n")
        self.say(text)
        if self._answer is not None:
            print(self._prompt, end="", file=self.out, flush=True)

    def ask(self, question: str, then: Callable[[str], None]) -> None:
        self._answer = then
        self._prompt = question
        print(question, end="", file=self.out, flush=True)

    def menu(self) -> None:
        self.say(self.tr(MENU))
        self.ask("> ", self._on_choice)

    def read_stdin_forever(self, stream=None) -> threading.Thread:
        stream = stream or sys.stdin

        def pump() -> None:
            for line in stream:
                self.line_received.emit(line.rstrip("\r\n"))
            self.input_closed.emit()

        thread = threading.Thread(target=pump, name="console input", daemon=True)
        thread.start()
        return thread

    def _on_line(self, line: str) -> None:
        answer, self._answer = self._answer, None
        if answer is not None:
            answer(line)  # not stripped: names may begin or end with spaces

    # ------------------------------------------------------------ menu

    def _on_choice(self, choice: str) -> None:
        command = choice.strip().upper()
        actions = {
            "1": self.join,
            "JOIN": self.join,
            "2": self.search,
            "SEARCH": self.search,
            "3": self.download,
            "DOWNLOAD": self.download,
            "4": self.ask_quit,
            "QUIT": self.ask_quit,
            "Q": self.ask_quit,
            "5": self.show_transfers,
            "TRANSFERS": self.show_transfers,
        }
        action = actions.get(command)
        if action is None:
            if command:
                self.say(
                    self.tr("Unknown option {choice}: type 1, 2, 3, 4 or 5.").format(
                        choice=repr(p.printable(choice))
                    )
                )
            self.menu()
            return
        action()

    def join(self) -> None:
        if self.node is not None:
            self.say(
                self.tr("Already in the network, sharing {folder}.").format(
                    folder=self.config.share_dir
                )
            )
            self.menu()
            return
        self.ask(
            self.tr("Index server [{server}]: ").format(server=self.config.servers_text()),
            self._join_server,
        )

    def _join_server(self, answer: str) -> None:
        if answer.strip():
            try:  # one address, or several separated by commas or spaces
                self.config.set_servers(
                    [parse_host_port(text) for text in re.split(r"[\s,]+", answer.strip())]
                )
            except ValueError as exc:
                self.say(self.tr("Not a server address: {reason}.").format(reason=exc))
                self.join()
                return
        self._ask_folder()

    def _ask_folder(self) -> None:
        self.ask(
            self.tr("Shared folder [{folder}]: ").format(folder=self.config.share_dir),
            self._join_folder,
        )

    def _join_folder(self, answer: str) -> None:
        if answer.strip():
            folder = Path(answer.strip()).expanduser()
            if not folder.is_dir():
                self.say(self.tr("{folder} is not a folder.").format(folder=folder))
                self._ask_folder()
                return
            self.config.share_dir = folder.resolve()
        self.node = PeerNode(self.config, parent=self)
        node = self.node
        node.client.joined.connect(self._on_joined)
        node.client.server_changed.connect(self._on_server_changed)
        node.client.connection_lost.connect(self._on_connection_lost)
        node.search_finished.connect(self._on_search_finished)
        node.search_failed.connect(self._on_search_failed)
        node.transfers.transfer_finished.connect(self._on_downloaded)
        node.transfers.transfer_changed.connect(self._on_transfer_changed)
        for problem, folder, error in node.folder_problems():
            self.say(describe_folder_problem(problem, folder, error))
        try:
            port = node.uploads.start(self.config.listen_host, self.config.listen_port)
        except OSError as exc:
            self.say(str(exc))
            self.node = None
            self.menu()
            return
        node.client.set_listen_port(port)
        self.say(self.tr("Hashing the files in {folder} ...").format(folder=self.config.share_dir))
        node.library.hashing_finished.connect(self._start_joining)
        node.library.start()
        node.transfers.start()  # unfinished downloads go on while we connect
        self.menu()  # the menu never waits for the network

    def _start_joining(self) -> None:
        node = self.node
        if node is None or node.client.state != "offline":
            return
        node.client.start()  # says which server it tries (server_changed)

    def _on_server_changed(self, server: str) -> None:
        self.notify(self.tr("Connecting to {server} ...").format(server=server))

    def _on_joined(self, address: str, _count: int) -> None:
        self.notify(
            self.tr("Joined the index server at {server}.").format(
                server=self.node.client.server_address
            )
        )
        names = " ".join(p.printable(f.name) for f in self.node.library.infos())
        self.notify(
            self.tr("I am peer {address} with files {names}")
            .format(address=address, names=names)
            .rstrip()
        )

    def _on_connection_lost(self, message: str) -> None:
        self.notify(message + " " + self.tr("(retrying by itself; the menu still works)"))

    def _need_node(self) -> bool:
        if self.node is None:
            self.say(self.tr("JOIN first."))
            self.menu()
            return False
        return True

    def search(self) -> None:
        if self._need_node():
            self.ask(self.tr("File name: "), self._search_for)

    def _search_for(self, query: str) -> None:
        if not query.strip():
            self.menu()
            return
        if self.node.client.state != "joined":
            self.say(self.tr("Not connected to the index server yet; try again in a moment."))
            self.menu()
            return
        self._search_id = self.node.search(query[: p.MAX_QUERY_CHARS])
        self._query = query
        self.say(self.tr("Searching ..."))
        self.menu()

    def _on_search_finished(self, request_id: int, results: list) -> None:
        if request_id != self._search_id:
            return
        self.results = results
        lines = []
        exact = [r for r in results if r.name.lower() == self._query.strip().lower()]
        if exact:
            peers = " ".join(str(peer) for r in exact for peer in r.peers)
            lines.append(self.tr("peers with the requested file: {peers}").format(peers=peers))
        else:
            lines.append(self.tr("No peer has a file with exactly that name."))
        if results:
            lines.append(self.tr("Results (DOWNLOAD takes a number or a name):"))
            for number, result in enumerate(results[:50], 1):
                peers = " ".join(str(peer) for peer in result.peers)
                lines.append(
                    self.tr("  {number}. {name} ({size}): {peers}").format(
                        number=number,
                        name=p.printable(result.name),
                        size=human_size(result.size),
                        peers=peers,
                    )
                )
        self.notify("\n".join(lines))

    def _on_search_failed(self, request_id: int, message: str) -> None:
        if request_id == self._search_id:
            self.notify(self.tr("Search failed: {reason}").format(reason=message))

    def download(self) -> None:
        if self._need_node():
            self.ask(self.tr("File name or number: "), self._download_name)

    def _download_name(self, answer: str) -> None:
        matches = []
        if answer.strip().isdigit() and 1 <= int(answer) <= len(self.results):
            matches = [self.results[int(answer) - 1]]
        if not matches:
            matches = [r for r in self.results if r.name == answer]
        if not matches:
            matches = [r for r in self.results if r.name.lower() == answer.strip().lower()]
        if not matches:
            self.say(self.tr("SEARCH for that file first; no search result has that name."))
            self.menu()
            return
        self._chosen = matches[0]
        default = str(self._chosen.peers[0]) if self._chosen.peers else ""
        self.ask(
            self.tr("Peer to download from [{peer}]: ").format(peer=default), self._download_from
        )

    def _download_from(self, answer: str) -> None:
        result = self._chosen
        peers = list(result.peers)
        if answer.strip():
            try:
                host, port = parse_host_port(answer, p.DEFAULT_PEER_PORT)
            except ValueError as exc:
                self.say(self.tr("Not a peer address: {reason}.").format(reason=exc))
                self.menu()
                return
            chosen = p.PeerAddress(host, port)
            peers = [chosen] + [peer for peer in peers if peer != chosen]
        self.node.transfers.add(result.hash, result.size, result.name, peers)
        self.say(
            self.tr("Downloading {name} ({size}) ...").format(
                name=p.printable(result.name), size=human_size(result.size)
            )
        )
        self.menu()

    # ------------------------------------------------------------ transfers

    def show_transfers(self) -> None:
        if not self._need_node():
            return
        transfers = self.node.transfers.transfers()
        if not transfers:
            self.say(self.tr("No downloads."))
            self.menu()
            return
        for number, transfer in enumerate(transfers, 1):
            self.say(f"  {number}. {p.printable(transfer.name)}: {describe_transfer(transfer)}")
        self.ask(
            self.tr("p N pause, r N resume or retry, c N cancel, d N cancel and delete; Enter: "),
            lambda answer: self._transfer_command(answer, transfers),
        )

    def _transfer_command(self, answer: str, transfers: list[Transfer]) -> None:
        words = answer.split()
        manager = self.node.transfers
        if len(words) == 2 and words[1].isdigit() and 1 <= int(words[1]) <= len(transfers):
            transfer = transfers[int(words[1]) - 1]
            command = words[0].lower()
            if command == "p":
                manager.pause(transfer.id)
            elif command == "r":
                manager.resume(transfer.id)
            elif command in ("c", "d"):
                manager.cancel(transfer.id, delete_partial=command == "d")
            else:
                self.say(self.tr("Unknown command {command}.").format(command=repr(words[0])))
        elif words:
            self.say(self.tr("Type a letter and a number, for example: c 2"))
        self.menu()

    def _on_transfer_changed(self, transfer_id: str) -> None:
        transfer = self.node.transfers.get(transfer_id)
        if transfer is None:
            return
        if transfer.state in (TransferState.FAILED, TransferState.WAITING) and transfer.error:
            told = (transfer_id, transfer.error)
            if told not in self._told_failures:  # once per reason, not at every retry
                self._told_failures.add(told)
                text = (
                    self.tr("Download of {name} failed: {reason}")
                    if transfer.state is TransferState.FAILED
                    else self.tr("Download of {name} is waiting to retry: {reason}")
                )
                self.notify(text.format(name=p.printable(transfer.name), reason=transfer.error))
            return
        if transfer.state is not TransferState.DOWNLOADING:
            return
        percent = int(transfer.progress * 100)
        now = time.monotonic()
        last_percent, last_time = self._progress_marks.get(transfer_id, (-PROGRESS_STEP, 0.0))
        due = (
            now - last_time >= TERMINAL_PROGRESS_INTERVAL
            if self._tty
            else percent >= last_percent + PROGRESS_STEP
        )
        if due:
            self._progress_marks[transfer_id] = (percent - percent % PROGRESS_STEP, now)
            self.notify(f"{p.printable(transfer.name)}: {describe_transfer(transfer)}")

    def _on_downloaded(self, transfer_id: str, path: str, _digest: object) -> None:
        transfer = self.node.transfers.get(transfer_id)
        name = p.printable(transfer.remote_name if transfer else Path(path).name)
        self.notify(
            self.tr("File {name} downloaded successfully to folder {folder}").format(
                name=name, folder=Path(path).parent
            )
        )

    # ------------------------------------------------------------ quitting

    def ask_quit(self) -> None:
        """QUIT from the menu: asks first while downloads are running."""
        running = self.node.transfers.running_count() if self.node is not None else 0
        if not running:
            self.quit()
            return
        self.ask(
            self.tr(
                "{count} download(s) running; they resume the next time you start. Quit now? [y/N] "
            ).format(count=running),
            self._answer_quit,
        )

    def _answer_quit(self, answer: str) -> None:
        if answer.strip().lower() in ("y", "yes", "s", "sim"):
            self.quit()
        else:
            self.menu()

    def quit(self) -> None:
        """Stop the peer (downloads save their state) and end the program, without asking."""
        self._answer = None
        if self.node is not None:
            self.node.stop()
        QCoreApplication.quit()


def describe_transfer(transfer: Transfer) -> str:
    """``42% of 1.2 GB, 35.1 MB/s, 48 s left`` or the state in words."""
    if transfer.state is TransferState.DOWNLOADING:
        text = (
            f"{transfer.progress * 100:.0f}% of {human_size(transfer.size)}, "
            f"{human_size(transfer.speed)}/s, "
            f"{transfer.sources_active} of {len(transfer.sources)} sources"
        )
        eta = transfer.eta_seconds
        return text if eta is None else f"{text}, {eta:.0f} s left"
    if transfer.state in (TransferState.FAILED, TransferState.WAITING) and transfer.error:
        return f"{transfer.state.value}: {transfer.error}"
    if transfer.state is TransferState.DONE:
        return f"done: {transfer.final_path}"
    return f"{transfer.state.value}, {transfer.progress * 100:.0f}% of {human_size(transfer.size)}"


def run_console(args: argparse.Namespace) -> int:
    from app.config import config_from_args
    from app.i18n import Translations
    from app.quit_signals import QuitOnSignals

    app = QCoreApplication.instance() or QCoreApplication(sys.argv[:1])
    translations = Translations(app)
    translations.apply("")  # the console follows the system language
    menu = ConsoleMenu(config_from_args(args))
    quitter = QuitOnSignals(menu.quit)
    menu.menu()
    menu.read_stdin_forever()
    code = app.exec()
    quitter.uninstall()
    return code
