"""Dialogs: the first-run setup and Settings form, and the questions the window asks.

Everything that would block on a modal dialog goes through ``Prompts``, so tests can
replace it with answers of their own.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.network import protocol as p
from app.network.identity import grouped_fingerprint
from app.settings import Settings
from app.ui.formatting import format_count, format_size
from app.ui.validation import (
    KB,
    MB,
    parse_rate,
    parse_server_list,
    rate_parts,
    server_address_text,
)


@dataclass(frozen=True)
class SettingsValues:
    """Everything the Settings dialog edits."""

    #: the index servers, "host:port" each
    server_addresses: tuple[str, ...]
    share_dir: Path
    download_dir: Path
    listen_port: int
    upload_slots: int
    max_downloads: int
    language: str
    notify_finished: bool
    #: speed limits in bytes per second (0 = none): the usual pair and the alternative one
    max_upload_rate: int = 0
    max_download_rate: int = 0
    alt_upload_rate: int = 0
    alt_download_rate: int = 0
    #: the video player for Play (empty: found automatically)
    player: str = ""
    #: the port the peer listens on now (0: not listening); shown, never saved
    listening_port: int = 0

    @classmethod
    def load(cls, settings: Settings) -> SettingsValues:
        return cls(
            server_addresses=tuple(settings.server_addresses),
            share_dir=settings.share_dir,
            download_dir=settings.download_dir,
            listen_port=settings.listen_port,
            upload_slots=settings.upload_slots,
            max_downloads=settings.max_downloads,
            language=settings.language,
            notify_finished=settings.notify_finished,
            max_upload_rate=settings.max_upload_rate,
            max_download_rate=settings.max_download_rate,
            alt_upload_rate=settings.alt_upload_rate,
            alt_download_rate=settings.alt_download_rate,
            player=settings.player,
        )

    def save(self, settings: Settings) -> None:
        settings.server_addresses = list(self.server_addresses)
        settings.share_dir = self.share_dir
        settings.download_dir = self.download_dir
        settings.listen_port = self.listen_port
        settings.upload_slots = self.upload_slots
        settings.max_downloads = self.max_downloads
        settings.language = self.language
        settings.notify_finished = self.notify_finished
        settings.player = self.player
        settings.max_upload_rate = self.max_upload_rate
        settings.max_download_rate = self.max_download_rate
        settings.alt_upload_rate = self.alt_upload_rate
        settings.alt_download_rate = self.alt_download_rate
        settings.setup_done = True
        settings.sync()

    @property
    def server_address(self) -> str:
        """The first index server."""
        return self.server_addresses[0]


class _FolderField(QWidget):
    """A folder path with a Browse… button."""

    def __init__(self, path: Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.edit = QLineEdit(str(path), self)
        self.edit.setMinimumWidth(320)
        self.browse = QPushButton(self)
        self.browse.clicked.connect(self._choose)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.edit, 1)
        layout.addWidget(self.browse)

    def path(self) -> Path:
        return Path(self.edit.text().strip()).expanduser()

    def _choose(self) -> None:
        chosen = QFileDialog.getExistingDirectory(self, self.browse.toolTip(), self.edit.text())
        if chosen:
            self.edit.setText(chosen)


class RateField(QWidget):
    """A speed limit as people type it: a number and KB/s or MB/s; blank or 0 is no limit."""

    def __init__(self, rate: int, name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName(name)
        self.edit = QLineEdit(self)
        self.edit.setObjectName(f"{name}_number")
        self.edit.setMaximumWidth(90)
        self.edit.setAlignment(Qt.AlignmentFlag.AlignRight)
        self.unit = QComboBox(self)
        self.unit.setObjectName(f"{name}_unit")
        self.unit.addItem("KB/s", KB)
        self.unit.addItem("MB/s", MB)
        self.set_rate(rate)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.edit)
        layout.addWidget(self.unit)
        layout.addStretch(1)

    def set_rate(self, rate: int) -> None:
        text, unit = rate_parts(rate)
        self.edit.setText(text)
        self.unit.setCurrentIndex(max(0, self.unit.findData(unit)))

    def rate(self) -> int:
        """Bytes per second (0 = no limit); ValueError when the number cannot be read."""
        return parse_rate(self.edit.text(), int(self.unit.currentData()))


class SettingsDialog(QDialog):
    """The Settings dialog; with ``first_run`` it is the short welcome form."""

    def __init__(
        self, values: SettingsValues, first_run: bool = False, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.first_run = first_run
        self._initial = values
        self.intro = QLabel(self)
        self.intro.setWordWrap(True)
        self.intro.setTextFormat(Qt.TextFormat.PlainText)
        self.intro.setVisible(first_run)

        #: the index servers, one a line
        self.servers = QPlainTextEdit("\n".join(values.server_addresses), self)
        self.servers.setObjectName("index_servers")
        self.servers.setPlaceholderText("127.0.0.1:1099")
        self.servers.setTabChangesFocus(True)
        self.servers.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        lines_shown = 3
        self.servers.setFixedHeight(
            self.servers.fontMetrics().lineSpacing() * lines_shown
            + round(self.servers.document().documentMargin() * 2)
            + self.servers.frameWidth() * 2
            + 4
        )
        self.servers.textChanged.connect(self._validate)
        self.share = _FolderField(values.share_dir, self)
        self.downloads = _FolderField(values.download_dir, self)
        self.share.edit.textChanged.connect(self._validate)
        self.downloads.edit.textChanged.connect(self._validate)

        self.basic = QGroupBox(self)
        basic_form = QFormLayout(self.basic)
        self.server_label = QLabel(self)
        self.share_label = QLabel(self)
        self.downloads_label = QLabel(self)
        basic_form.addRow(self.server_label, self.servers)
        basic_form.addRow(self.share_label, self.share)
        basic_form.addRow(self.downloads_label, self.downloads)

        self.listen_port = QSpinBox(self)
        self.listen_port.setRange(0, 65535)
        self.listen_port.setValue(values.listen_port)
        self.upload_slots = QSpinBox(self)
        self.upload_slots.setRange(1, 100)
        self.upload_slots.setValue(values.upload_slots)
        self.max_downloads = QSpinBox(self)
        self.max_downloads.setRange(1, 50)
        self.max_downloads.setValue(values.max_downloads)
        self.language = QComboBox(self)
        for code in ("", "en", "pt_BR"):
            self.language.addItem("", code)
        self.language.setCurrentIndex(max(0, self.language.findData(values.language)))
        self.notify = QCheckBox(self)
        self.notify.setChecked(values.notify_finished)
        self.player = QLineEdit(values.player, self)
        self.player.setObjectName("player")
        self.listening = QLabel(self)
        self.listening.setObjectName("listening_port")
        self.listening.setTextFormat(Qt.TextFormat.PlainText)
        self.listening.setVisible(values.listening_port > 0)
        port_row = QHBoxLayout()
        port_row.addWidget(self.listen_port)
        port_row.addWidget(self.listening, 1)

        self.up_rate = RateField(values.max_upload_rate, "upload_rate", self)
        self.down_rate = RateField(values.max_download_rate, "download_rate", self)
        self.alt_up_rate = RateField(values.alt_upload_rate, "alt_upload_rate", self)
        self.alt_down_rate = RateField(values.alt_download_rate, "alt_download_rate", self)
        self.rate_fields = (self.up_rate, self.down_rate, self.alt_up_rate, self.alt_down_rate)
        for field in self.rate_fields:
            field.edit.textChanged.connect(self._validate)
            field.unit.currentIndexChanged.connect(self._validate)
        self.limits = QGroupBox(self)
        self.limits.setVisible(not first_run)
        limits_grid = QGridLayout(self.limits)
        self.limits_normal_label = QLabel(self)
        self.limits_alt_label = QLabel(self)
        self.up_rate_label = QLabel(self)
        self.down_rate_label = QLabel(self)
        self.limits_note = QLabel(self)
        self.limits_note.setWordWrap(True)
        self.limits_note.setTextFormat(Qt.TextFormat.PlainText)
        limits_grid.addWidget(self.limits_normal_label, 0, 1)
        limits_grid.addWidget(self.limits_alt_label, 0, 2)
        limits_grid.addWidget(self.up_rate_label, 1, 0)
        limits_grid.addWidget(self.up_rate, 1, 1)
        limits_grid.addWidget(self.alt_up_rate, 1, 2)
        limits_grid.addWidget(self.down_rate_label, 2, 0)
        limits_grid.addWidget(self.down_rate, 2, 1)
        limits_grid.addWidget(self.alt_down_rate, 2, 2)
        limits_grid.addWidget(self.limits_note, 3, 0, 1, 3)
        limits_grid.setColumnStretch(3, 1)

        self.advanced = QGroupBox(self)
        self.advanced.setVisible(not first_run)
        advanced_form = QFormLayout(self.advanced)
        self.port_label = QLabel(self)
        self.slots_label = QLabel(self)
        self.downloads_at_once_label = QLabel(self)
        self.language_label = QLabel(self)
        advanced_form.addRow(self.port_label, port_row)
        advanced_form.addRow(self.slots_label, self.upload_slots)
        advanced_form.addRow(self.downloads_at_once_label, self.max_downloads)
        advanced_form.addRow(self.language_label, self.language)
        self.player_label = QLabel(self)
        advanced_form.addRow(self.player_label, self.player)
        advanced_form.addRow("", self.notify)

        self.error = QLabel(self)
        self.error.setObjectName("settings_error")
        self.error.setTextFormat(Qt.TextFormat.PlainText)
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color: #b3261e;")
        self.error.hide()

        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self
        )
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addWidget(self.intro)
        layout.addWidget(self.basic)
        layout.addWidget(self.advanced)
        layout.addWidget(self.limits)
        layout.addWidget(self.error)
        layout.addStretch(1)
        layout.addWidget(self.buttons)
        self.retranslate()
        self._validate()

    def retranslate(self) -> None:
        self.setWindowTitle(
            self.tr("Welcome to Napster P2P") if self.first_run else self.tr("Settings")
        )
        self.intro.setText(
            self.tr(
                "Napster P2P finds files through an index server and downloads them straight "
                "from other peers. Say which server to use, which folder you share and where "
                "downloads go. You can change all of this later in Settings."
            )
        )
        self.basic.setTitle(self.tr("Network and folders"))
        self.server_label.setText(self.tr("Index servers:"))
        self.servers.setToolTip(
            self.tr(
                "One server a line: host name or address and port, e.g. 127.0.0.1:1099. "
                "With several, the peer uses one and moves to another when it is lost."
            )
        )
        self.share_label.setText(self.tr("Shared folder:"))
        self.downloads_label.setText(self.tr("Download folder:"))
        for field in (self.share, self.downloads):
            field.browse.setText(self.tr("Browse…"))
            field.browse.setToolTip(self.tr("Choose a folder"))
        self.advanced.setTitle(self.tr("Transfers and interface"))
        self.port_label.setText(self.tr("Listen port:"))
        self.listen_port.setSpecialValueText(self.tr("any free port"))
        self.listen_port.setToolTip(
            self.tr("Other peers download from this port. A new port is used after a restart.")
        )
        self.slots_label.setText(self.tr("Upload slots:"))
        self.downloads_at_once_label.setText(self.tr("Downloads at a time:"))
        self.language_label.setText(self.tr("Language:"))
        self.player_label.setText(self.tr("Video player:"))
        self.player.setPlaceholderText(self.tr("Found automatically (mpv, VLC, ...)"))
        self.language.setItemText(0, self.tr("System default"))
        self.language.setItemText(1, "English")
        self.language.setItemText(2, "Português (Brasil)")
        self.notify.setText(self.tr("Notify me when a download finishes"))
        self.listening.setText(
            self.tr("now listening on port {port}").format(port=self._initial.listening_port)
        )
        self.listening.setToolTip(
            self.tr(
                "The port other peers reach you on now. It differs from the saved one when "
                "that port was busy or set to any free port."
            )
        )
        self.limits.setTitle(self.tr("Speed limits"))
        self.limits_normal_label.setText(self.tr("Usual"))
        self.limits_alt_label.setText(self.tr("Alternative"))
        self.up_rate_label.setText(self.tr("Upload:"))
        self.down_rate_label.setText(self.tr("Download:"))
        self.limits_note.setText(
            self.tr(
                "Blank or 0 means no limit. The toolbar's “Alternative Speed Limits” button "
                "switches between the two; limits apply at once."
            )
        )
        for field in self.rate_fields:
            field.edit.setPlaceholderText(self.tr("no limit"))
        ok = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        cancel = self.buttons.button(QDialogButtonBox.StandardButton.Cancel)
        ok.setText(self.tr("Start") if self.first_run else self.tr("OK"))
        cancel.setText(self.tr("Quit") if self.first_run else self.tr("Cancel"))
        self._validate()

    def problem(self) -> str:
        """What keeps the form from being accepted, or ""."""
        try:
            parse_server_list(self.servers.toPlainText())
        except ValueError as exc:
            return self.tr("Index server: {reason}").format(reason=exc)
        for label, field in (
            (self.share_label, self.share),
            (self.downloads_label, self.downloads),
        ):
            if not field.edit.text().strip():
                return self.tr("Choose a folder for “{field}”.").format(
                    field=label.text().rstrip(":")
                )
            if not field.path().is_absolute():
                return self.tr("“{path}” is not a full folder path.").format(
                    path=field.edit.text().strip()
                )
        for label, field in (
            (self.up_rate_label, self.up_rate),
            (self.down_rate_label, self.down_rate),
            (self.up_rate_label, self.alt_up_rate),
            (self.down_rate_label, self.alt_down_rate),
        ):
            try:
                field.rate()
            except ValueError as exc:
                return self.tr("Speed limit for “{field}”: {reason}").format(
                    field=label.text().rstrip(":"), reason=exc
                )
        return ""

    def _validate(self) -> None:
        problem = self.problem()
        self.error.setText(problem)
        self.error.setVisible(bool(problem))
        if self.isVisible():
            # Grow (never shrink) so a two-line error does not squeeze the form.
            layout = self.layout()
            needed = layout.totalHeightForWidth(self.width()) if layout is not None else 0
            if needed > self.height():
                self.resize(self.width(), needed)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(not problem)

    def values(self) -> SettingsValues:
        servers = parse_server_list(self.servers.toPlainText())
        return replace(
            self._initial,
            server_addresses=tuple(server_address_text(host, port) for host, port in servers),
            share_dir=self.share.path(),
            download_dir=self.downloads.path(),
            listen_port=self.listen_port.value(),
            upload_slots=self.upload_slots.value(),
            max_downloads=self.max_downloads.value(),
            language=self.language.currentData() or "",
            notify_finished=self.notify.isChecked(),
            player=self.player.text().strip(),
            max_upload_rate=self.up_rate.rate(),
            max_download_rate=self.down_rate.rate(),
            alt_upload_rate=self.alt_up_rate.rate(),
            alt_download_rate=self.alt_down_rate.rate(),
        )


class ResultDetailsDialog(QDialog):
    """A search result in full: name, size, hash and every source's address (copyable).

    Not modal: it follows the selection while the user goes on searching.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("result_details")
        self.result: p.SearchResult | None = None
        self.name = self._value_label("details_name")
        self.size = self._value_label("details_size")
        self.hash = self._value_label("details_hash")
        self.hash.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.sources = QPlainTextEdit(self)
        self.sources.setObjectName("details_sources")
        self.sources.setReadOnly(True)
        self.sources.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.name_label = QLabel(self)
        self.size_label = QLabel(self)
        self.hash_label = QLabel(self)
        self.sources_label = QLabel(self)
        form = QFormLayout()
        form.addRow(self.name_label, self.name)
        form.addRow(self.size_label, self.size)
        form.addRow(self.hash_label, self.hash)
        form.addRow(self.sources_label, self.sources)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        self.copy_button = self.buttons.addButton("", QDialogButtonBox.ButtonRole.ActionRole)
        self.copy_button.setObjectName("copy_sources")
        self.copy_button.clicked.connect(self.copy_sources)
        self.buttons.rejected.connect(self.close)
        layout = QVBoxLayout(self)
        layout.addLayout(form, 1)
        layout.addWidget(self.buttons)
        self.resize(560, 380)
        self.retranslate()

    def _value_label(self, name: str) -> QLabel:
        label = QLabel(self)
        label.setObjectName(name)
        label.setTextFormat(Qt.TextFormat.PlainText)
        label.setWordWrap(True)
        return label

    def show_result(self, result: p.SearchResult) -> None:
        self.result = result
        self.name.setText(p.printable(result.name, 255))
        self.size.setText(
            self.tr("{size} ({bytes} bytes)").format(
                size=format_size(result.size), bytes=format_count(result.size)
            )
        )
        self.hash.setText(result.hash)
        self.sources.setPlainText("\n".join(p.printable(str(peer), 300) for peer in result.peers))
        self.retranslate()

    def source_lines(self) -> list[str]:
        return self.sources.toPlainText().splitlines()

    def copy_sources(self) -> None:
        QGuiApplication.clipboard().setText(self.sources.toPlainText())

    def retranslate(self) -> None:
        self.setWindowTitle(self.tr("Search result details"))
        self.name_label.setText(self.tr("Name:"))
        self.size_label.setText(self.tr("Size:"))
        self.hash_label.setText(self.tr("Hash (BLAKE3):"))
        count = len(self.result.peers) if self.result is not None else 0
        self.sources_label.setText(self.tr("Sources ({count}):").format(count=format_count(count)))
        self.sources.setToolTip(self.tr("The address and port of every peer sharing this file"))
        self.copy_button.setText(self.tr("Copy Addresses"))
        close = self.buttons.button(QDialogButtonBox.StandardButton.Close)
        close.setText(self.tr("Close"))


def _version() -> str:
    from app.runtime import package_version

    return package_version()


class CancelAnswer(str, Enum):
    KEEP_DOWNLOADING = "keep"
    CANCEL_KEEP_PARTIAL = "cancel_keep"
    CANCEL_DELETE_PARTIAL = "cancel_delete"


class Prompts(QObject):
    """The window's questions as modal dialogs; tests swap in an object with fixed answers."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.window = parent

    def confirm_quit(self, downloads: int, uploads: int, copies: int) -> bool:
        box = QMessageBox(self.window)
        box.setIcon(QMessageBox.Icon.Question)
        box.setTextFormat(Qt.TextFormat.PlainText)
        box.setWindowTitle(self.tr("Quit Napster P2P?"))
        parts = []
        if downloads:
            parts.append(self.tr("{count} downloads are running.").format(count=downloads))
        if uploads:
            parts.append(self.tr("{count} peers are downloading from you.").format(count=uploads))
        if copies:
            parts.append(self.tr("{count} files are still being copied.").format(count=copies))
        box.setText(" ".join(parts))
        box.setInformativeText(
            self.tr("Unfinished downloads resume the next time you start the app.")
        )
        quit_button = box.addButton(self.tr("Quit"), QMessageBox.ButtonRole.AcceptRole)
        box.addButton(self.tr("Keep running"), QMessageBox.ButtonRole.RejectRole)
        box.exec()
        return box.clickedButton() is quit_button

    def trust_new_server_identity(self, server: str, known: str, presented: str) -> bool:
        """An index server presents another certificate than before: trust the new one?"""
        box = QMessageBox(self.window)
        box.setIcon(QMessageBox.Icon.Warning)
        box.setTextFormat(Qt.TextFormat.PlainText)
        box.setWindowTitle(self.tr("Index server identity changed"))
        box.setText(
            self.tr(
                "The index server at {server} presented another identity than the one"
                " remembered. Napster P2P did not connect to it."
            ).format(server=server)
        )
        box.setInformativeText(
            self.tr(
                "Another machine may be answering at that address. Trust the new identity"
                " only if the server's operator says it changed.\n\nRemembered: {known}\n"
                "Presented: {presented}"
            ).format(known=grouped_fingerprint(known), presented=grouped_fingerprint(presented))
        )
        trust = box.addButton(self.tr("Trust the new identity"), QMessageBox.ButtonRole.AcceptRole)
        box.addButton(self.tr("Keep refusing"), QMessageBox.ButtonRole.RejectRole)
        box.exec()
        return box.clickedButton() is trust

    def ask_cancel(self, names: list[str]) -> CancelAnswer:
        box = QMessageBox(self.window)
        box.setIcon(QMessageBox.Icon.Question)
        box.setTextFormat(Qt.TextFormat.PlainText)
        box.setWindowTitle(self.tr("Cancel downloads?"))
        if len(names) == 1:
            box.setText(self.tr("Cancel the download of “{name}”?").format(name=names[0]))
        else:
            box.setText(self.tr("Cancel {count} downloads?").format(count=len(names)))
        box.setInformativeText(
            self.tr(
                "The part already downloaded can be deleted, or kept so that downloading the "
                "same file again continues where it stopped."
            )
        )
        delete = box.addButton(self.tr("Cancel and delete"), QMessageBox.ButtonRole.DestructiveRole)
        keep_part = box.addButton(
            self.tr("Cancel, keep the part"), QMessageBox.ButtonRole.AcceptRole
        )
        box.addButton(self.tr("Keep downloading"), QMessageBox.ButtonRole.RejectRole)
        box.exec()
        clicked = box.clickedButton()
        if clicked is delete:
            return CancelAnswer.CANCEL_DELETE_PARTIAL
        if clicked is keep_part:
            return CancelAnswer.CANCEL_KEEP_PARTIAL
        return CancelAnswer.KEEP_DOWNLOADING

    def edit_settings(self, values: SettingsValues) -> SettingsValues | None:
        dialog = SettingsDialog(values, parent=self.window)
        return dialog.values() if dialog.exec() == QDialog.DialogCode.Accepted else None

    def choose_files(self, folder: Path) -> list[Path]:
        names, _filter = QFileDialog.getOpenFileNames(
            self.window, self.tr("Choose files to share"), str(Path.home())
        )
        return [Path(name) for name in names]

    def show_about(self) -> None:
        QMessageBox.about(
            self.window,
            self.tr("About Napster P2P"),
            self.tr(
                "Napster P2P {version}\n\nFind files through an index server and download them "
                "straight from other peers, every piece verified."
            ).format(version=_version()),
        )

    def warn(self, title: str, text: str) -> None:
        """A warning that does not block: the window goes on while it is shown."""
        box = QMessageBox(QMessageBox.Icon.Warning, title, text, parent=self.window)
        box.setTextFormat(Qt.TextFormat.PlainText)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()

    def show_stream_url(self, url: str) -> None:
        """No player was found: say so, and give the stream's address to copy."""
        box = QMessageBox(
            QMessageBox.Icon.Information, self.tr("No video player found"), "", parent=self.window
        )
        box.setTextFormat(Qt.TextFormat.PlainText)
        box.setText(
            self.tr(
                "No video player was found. Install mpv or VLC, or choose your player in "
                "Settings. Meanwhile, open this address in any player that plays network "
                "streams; it plays while the file downloads:\n\n{url}"
            ).format(url=url)
        )
        copy = box.addButton(self.tr("Copy Address"), QMessageBox.ButtonRole.ActionRole)
        box.addButton(QMessageBox.StandardButton.Close)
        copy.clicked.connect(lambda: QApplication.clipboard().setText(url))
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()

    def show_error(self, title: str, text: str) -> None:
        box = QMessageBox(QMessageBox.Icon.Warning, title, text, parent=self.window)
        box.setTextFormat(Qt.TextFormat.PlainText)
        box.exec()
