"""Applying the Settings dialog's values to the running peer, and the speed limits in force."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QObject

from app.ui.dialogs import SettingsValues
from app.ui.formatting import translate
from app.ui.validation import parse_server_list, server_address_text

if TYPE_CHECKING:
    from app.ui.main_window import MainWindow


class SettingsApplier(QObject):
    """What the window does when settings change: save them, apply what can change live."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        config = window.node.config
        # The usual limits in force at start are the configuration's (the command line's, or
        # the saved ones); the alternative pair always comes from the saved settings.
        self.usual_limits = (config.max_upload_rate, config.max_download_rate)

    def current_values(self) -> SettingsValues:
        """The settings as they are in force (command-line choices included)."""
        config = self.window.node.config
        upload, download = self.usual_limits
        return SettingsValues(
            server_addresses=tuple(server_address_text(*server) for server in config.servers),
            share_dir=config.share_dir,
            download_dir=config.download_dir,
            listen_port=self.window.settings.listen_port,
            upload_slots=config.upload_slots,
            max_downloads=config.max_downloads,
            language=self.window.settings.language,
            notify_finished=self.window.settings.notify_finished,
            max_upload_rate=upload,
            max_download_rate=download,
            alt_upload_rate=self.window.settings.alt_upload_rate,
            alt_download_rate=self.window.settings.alt_download_rate,
            listening_port=self.window.node.listen_port
            if self.window.node.uploads.isListening()
            else 0,
        )

    def apply(self, values: SettingsValues) -> None:
        """Save the settings and apply what can change while running."""
        saved_port = self.window.settings.listen_port
        values.save(self.window.settings)
        config = self.window.node.config
        servers = parse_server_list("\n".join(values.server_addresses))
        if servers != config.servers:
            current = self.window.node.client.server
            self.window.node.set_servers(servers)
            if self.window.node.client.server != current:
                self.window.status.server_changed()
        if (values.share_dir, values.download_dir) != (config.share_dir, config.download_dir):
            try:
                self.window.node.set_folders(values.share_dir, values.download_dir)
            except OSError as exc:
                self.window.prompts.show_error(
                    translate("MainWindow", "Folder not usable"),
                    translate("MainWindow", "The folder could not be used: {reason}").format(
                        reason=exc
                    ),
                )
            self.window.shared_page.folders_changed()
        if values.upload_slots != config.upload_slots:
            self.window.node.set_upload_slots(values.upload_slots)
        if values.max_downloads != config.max_downloads:
            self.window.node.set_max_downloads(values.max_downloads)
        self.usual_limits = (values.max_upload_rate, values.max_download_rate)
        self.apply_rate_limits()
        self.window.set_language(values.language)
        if values.listen_port != saved_port and values.listen_port not in (
            0,
            self.window.node.listen_port,
        ):
            self.window.statusBar().showMessage(
                translate(
                    "MainWindow", "The new listen port {port} is used after a restart."
                ).format(port=values.listen_port),
                10000,
            )
        self.window.status.refresh()

    def rate_limits(self) -> tuple[int, int]:
        """The (upload, download) limits in bytes per second that should be in force."""
        if self.window.settings.use_alt_rates:
            return self.window.settings.alt_upload_rate, self.window.settings.alt_download_rate
        return self.usual_limits

    def apply_rate_limits(self) -> None:
        upload, download = self.rate_limits()
        config = self.window.node.config
        if (upload, download) != (config.max_upload_rate, config.max_download_rate):
            self.window.node.set_rate_limits(upload, download)
        self.window.status.set_alternative_limits(self.window.settings.use_alt_rates)

    def use_alternative_limits(self, on: bool) -> None:
        """Switch between the usual and the alternative limits, at once and for good."""
        self.window.settings.use_alt_rates = on
        self.window.settings.sync()
        self.apply_rate_limits()
