"""Dialogs: the first-run setup and Settings form, and the questions the window asks.

Everything that would block on a modal dialog goes through ``Prompts``, so tests can
replace it with answers of their own.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path

from PySide6.QtCore import QObject, Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.peer import parse_host_port
from app.settings import Settings


@dataclass(frozen=True)
class SettingsValues:
    """Everything the Settings dialog edits."""

    server_address: str
    share_dir: Path
    download_dir: Path
    listen_port: int
    upload_slots: int
    max_downloads: int
    language: str
    notify_finished: bool

    @classmethod
    def load(cls, settings: Settings) -> SettingsValues:
        return cls(
            server_address=settings.server_address,
            share_dir=settings.share_dir,
            download_dir=settings.download_dir,
            listen_port=settings.listen_port,
            upload_slots=settings.upload_slots,
            max_downloads=settings.max_downloads,
            language=settings.language,
            notify_finished=settings.notify_finished,
        )

    def save(self, settings: Settings) -> None:
        settings.server_address = self.server_address
        settings.share_dir = self.share_dir
        settings.download_dir = self.download_dir
        settings.listen_port = self.listen_port
        settings.upload_slots = self.upload_slots
        settings.max_downloads = self.max_downloads
        settings.language = self.language
        settings.notify_finished = self.notify_finished
        settings.setup_done = True
        settings.sync()


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

        self.server = QLineEdit(values.server_address, self)
        self.server.setPlaceholderText("127.0.0.1:1099")
        self.server.textChanged.connect(self._validate)
        self.share = _FolderField(values.share_dir, self)
        self.downloads = _FolderField(values.download_dir, self)
        self.share.edit.textChanged.connect(self._validate)
        self.downloads.edit.textChanged.connect(self._validate)

        self.basic = QGroupBox(self)
        basic_form = QFormLayout(self.basic)
        self.server_label = QLabel(self)
        self.share_label = QLabel(self)
        self.downloads_label = QLabel(self)
        basic_form.addRow(self.server_label, self.server)
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

        self.advanced = QGroupBox(self)
        self.advanced.setVisible(not first_run)
        advanced_form = QFormLayout(self.advanced)
        self.port_label = QLabel(self)
        self.slots_label = QLabel(self)
        self.downloads_at_once_label = QLabel(self)
        self.language_label = QLabel(self)
        advanced_form.addRow(self.port_label, self.listen_port)
        advanced_form.addRow(self.slots_label, self.upload_slots)
        advanced_form.addRow(self.downloads_at_once_label, self.max_downloads)
        advanced_form.addRow(self.language_label, self.language)
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
        self.server_label.setText(self.tr("Index server:"))
        self.server.setToolTip(self.tr("Host name or address and port, e.g. 127.0.0.1:1099"))
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
        self.language.setItemText(0, self.tr("System default"))
        self.language.setItemText(1, "English")
        self.language.setItemText(2, "Português (Brasil)")
        self.notify.setText(self.tr("Notify me when a download finishes"))
        ok = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        cancel = self.buttons.button(QDialogButtonBox.StandardButton.Cancel)
        ok.setText(self.tr("Start") if self.first_run else self.tr("OK"))
        cancel.setText(self.tr("Quit") if self.first_run else self.tr("Cancel"))
        self._validate()

    def problem(self) -> str:
        """What keeps the form from being accepted, or ""."""
        try:
            parse_host_port(self.server.text())
        except ValueError as exc:
            return self.tr("The server address is not valid: {reason}.").format(reason=exc)
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
        return ""

    def _validate(self) -> None:
        problem = self.problem()
        self.error.setText(problem)
        self.error.setVisible(bool(problem))
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(not problem)

    def values(self) -> SettingsValues:
        host, port = parse_host_port(self.server.text())
        host_text = f"[{host}]" if ":" in host else host
        return replace(
            self._initial,
            server_address=f"{host_text}:{port}",
            share_dir=self.share.path(),
            download_dir=self.downloads.path(),
            listen_port=self.listen_port.value(),
            upload_slots=self.upload_slots.value(),
            max_downloads=self.max_downloads.value(),
            language=self.language.currentData() or "",
            notify_finished=self.notify.isChecked(),
        )


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

    def show_error(self, title: str, text: str) -> None:
        box = QMessageBox(QMessageBox.Icon.Warning, title, text, parent=self.window)
        box.setTextFormat(Qt.TextFormat.PlainText)
        box.exec()
