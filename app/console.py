"""``napster-peer --cli``: the original console menu (JOIN, SEARCH, DOWNLOAD, quit).

Standard input is read on a plain thread and handed to the Qt loop by a
signal, so the peer keeps serving uploads while the menu waits for typing.
"""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QT_TRANSLATE_NOOP, QCoreApplication, QObject, Signal

from app.network import protocol as p
from app.peer import PeerConfig, PeerNode, parse_host_port

MENU = QT_TRANSLATE_NOOP(
    "ConsoleMenu",
    """
Napster P2P
  1 JOIN      enter the network and share your folder
  2 SEARCH    find which peers have a file
  3 DOWNLOAD  download a file from a peer
  4 QUIT
""",
)


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
        self._search_id: int | None = None
        self.line_received.connect(self._on_line)
        self.input_closed.connect(self.quit)

    # ------------------------------------------------------------ plumbing

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def ask(self, question: str, then: Callable[[str], None]) -> None:
        self._answer = then
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
            answer(line.strip())

    # ------------------------------------------------------------ menu

    def _on_choice(self, choice: str) -> None:
        command = choice.upper()
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
        }
        action = actions.get(command)
        if action is None:
            self.say(
                self.tr("Unknown option {choice}: type 1, 2, 3 or 4.").format(
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
            self.tr("Index server [{server}]: ").format(
                server=f"{self.config.server_host}:{self.config.server_port}"
            ),
            self._join_server,
        )

    def _join_server(self, answer: str) -> None:
        if answer:
            try:
                self.config.server_host, self.config.server_port = parse_host_port(answer)
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
        if answer:
            folder = Path(answer).expanduser()
            if not folder.is_dir():
                self.say(self.tr("{folder} is not a folder.").format(folder=folder))
                self._ask_folder()
                return
            self.config.share_dir = folder.resolve()
        self.node = PeerNode(self.config, parent=self)
        node = self.node
        node.client.joined.connect(self._on_joined)
        node.client.connection_lost.connect(lambda message: self.say(message))
        node.search_finished.connect(self._on_search_finished)
        node.search_failed.connect(self._on_search_failed)
        node.transfers.transfer_finished.connect(self._on_downloaded)
        node.transfers.transfer_failed.connect(self._on_download_failed)
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

    def _start_joining(self) -> None:
        node = self.node
        if node is None or node.client.state != "offline":
            return
        node.client.start()
        node.transfers.start()

    def _on_joined(self, address: str, _count: int) -> None:
        names = " ".join(p.printable(f.name) for f in self.node.library.infos())
        self.say(
            self.tr("I am peer {address} with files {names}")
            .format(address=address, names=names)
            .rstrip()
        )
        self.menu()

    def search(self) -> None:
        if self.node is None:
            self.say(self.tr("JOIN first."))
            self.menu()
            return
        self.ask(self.tr("File name: "), self._search_for)

    def _search_for(self, query: str) -> None:
        if not query:
            self.menu()
            return
        self._search_id = self.node.search(query[: p.MAX_QUERY_CHARS])
        self._query = query

    def _on_search_finished(self, request_id: int, results: list) -> None:
        if request_id != self._search_id:
            return
        self.results = results
        exact = [r for r in results if r.name.lower() == self._query.lower()]
        if exact:
            peers = " ".join(str(peer) for r in exact for peer in r.peers)
            self.say(self.tr("peers with the requested file: {peers}").format(peers=peers))
        else:
            self.say(self.tr("No peer has a file with exactly that name."))
        others = [r for r in results if r not in exact]
        if others:
            self.say(self.tr("Other files that match:"))
            for result in others[:20]:
                peers = " ".join(str(peer) for peer in result.peers)
                self.say(
                    self.tr("  {name} ({size} bytes): {peers}").format(
                        name=p.printable(result.name), size=result.size, peers=peers
                    )
                )
        self.menu()

    def _on_search_failed(self, request_id: int, message: str) -> None:
        if request_id == self._search_id:
            self.say(self.tr("Search failed: {reason}").format(reason=message))
            self.menu()

    def download(self) -> None:
        if self.node is None:
            self.say(self.tr("JOIN first."))
            self.menu()
            return
        self.ask(self.tr("File name: "), self._download_name)

    def _download_name(self, name: str) -> None:
        matches = [r for r in self.results if r.name.lower() == name.lower()]
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
        if answer:
            try:
                host, port = parse_host_port(answer, p.DEFAULT_PEER_PORT)
            except ValueError as exc:
                self.say(self.tr("Not a peer address: {reason}.").format(reason=exc))
                self.menu()
                return
            chosen = p.PeerAddress(host, port)
            peers = [chosen] + [peer for peer in peers if peer != chosen]
        self.node.transfers.add(result.hash, result.size, result.name, peers)
        self.say(self.tr("Downloading {name} ...").format(name=p.printable(result.name)))
        self.menu()

    def _on_downloaded(self, transfer_id: str, path: str, _digest: object) -> None:
        transfer = self.node.transfers.get(transfer_id)
        name = p.printable(transfer.remote_name if transfer else Path(path).name)
        self.say(
            "\n"
            + self.tr("File {name} downloaded successfully to folder {folder}").format(
                name=name, folder=Path(path).parent
            )
        )

    def _on_download_failed(self, transfer_id: str, reason: str) -> None:
        transfer = self.node.transfers.get(transfer_id)
        if transfer is not None:
            self.say(
                "\n"
                + self.tr("Download of {name} failed: {reason}").format(
                    name=p.printable(transfer.name), reason=reason
                )
            )

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
        if self.node is not None:
            self.node.stop()
        QCoreApplication.quit()


def run_console(args: argparse.Namespace) -> int:
    from app.__main__ import config_from_args
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
