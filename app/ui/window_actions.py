"""The window's actions, menus, toolbar and tray, and their texts in the user's language."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMenu, QStyle, QSystemTrayIcon, QToolBar

from app.ui.formatting import translate
from app.ui.icons import app_icon, speed_limit_icon, standard_icon

if TYPE_CHECKING:
    from app.ui.main_window import MainWindow

SP = QStyle.StandardPixmap
#: The commands on the selected downloads, as the Transfers menu and the downloads' context
#: menu list them (None: a separator).
DOWNLOAD_COMMANDS = (
    "pause",
    "resume",
    "retry",
    "cancel",
    None,
    "play",
    "open_file",
    "show_in_folder",
    None,
    "clear_finished",
)


def make_actions(window: MainWindow) -> dict[str, QAction]:
    """Every command of the window, by name; texts come from ``retranslate_actions``."""
    actions: dict[str, QAction] = {}
    specs: list[tuple[str, Callable[[], None], QKeySequence | str | None, object]] = [
        ("add_files", window.add_files, QKeySequence.StandardKey.Open, SP.SP_FileDialogNewFolder),
        ("open_shared", window.open_shared_folder, "Ctrl+Shift+S", SP.SP_DirOpenIcon),
        ("open_downloads", window.open_download_folder, "Ctrl+Shift+D", SP.SP_DirIcon),
        ("settings", window.open_settings, "Ctrl+,", SP.SP_FileDialogDetailedView),
        ("quit", window.close, QKeySequence.StandardKey.Quit, SP.SP_DialogCloseButton),
        ("page_search", lambda: window.show_page(window.search_page), "Ctrl+1", None),
        ("page_transfers", lambda: window.show_page(window.transfers_page), "Ctrl+2", None),
        ("page_shared", lambda: window.show_page(window.shared_page), "Ctrl+3", None),
        ("find", window.focus_search, QKeySequence.StandardKey.Find, None),
        ("download", window.search_page.download_selected, "Ctrl+D", SP.SP_ArrowDown),
        ("details", window.show_details, "Ctrl+I", SP.SP_FileDialogInfoView),
        ("copy_sources", window.copy_sources, "Ctrl+Shift+C", None),
        ("alt_limits", lambda: None, "Ctrl+Shift+L", None),
        ("pause", window.transfers_page.pause_selected, "Ctrl+P", SP.SP_MediaPause),
        ("resume", window.transfers_page.resume_selected, "Ctrl+R", SP.SP_MediaPlay),
        (
            "cancel",
            window.transfers_page.cancel_selected,
            QKeySequence.StandardKey.Delete,
            SP.SP_DialogCancelButton,
        ),
        ("retry", window.transfers_page.retry_selected, "F5", SP.SP_BrowserReload),
        ("play", window.play_selected, "Ctrl+Shift+P", SP.SP_MediaPlay),
        ("open_file", window.transfers_page.open_selected, "Ctrl+Return", SP.SP_FileIcon),
        (
            "show_in_folder",
            window.transfers_page.show_selected_in_folder,
            "Ctrl+L",
            SP.SP_DirLinkIcon,
        ),
        ("clear_finished", window.transfers_page.clear_finished, None, SP.SP_DialogResetButton),
        ("about", window.show_about, QKeySequence.StandardKey.HelpContents, None),
    ]
    for name, slot, shortcut, icon in specs:
        action = QAction(window)
        action.setObjectName(f"action_{name}")
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        if icon is not None:
            action.setIcon(standard_icon(icon))
        action.triggered.connect(slot)
        actions[name] = action
    actions["alt_limits"].setCheckable(True)
    actions["alt_limits"].setIcon(speed_limit_icon())
    actions["cancel"].setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
    window.transfers_page.addAction(actions["cancel"])
    return actions


def make_menus_and_toolbar(window: MainWindow) -> None:
    """The menu bar, the toolbar and where each action appears."""
    a = window.actions
    bar = window.menuBar()
    window.file_menu = bar.addMenu("")
    for name in ("add_files", "open_shared", "open_downloads", None, "settings", None, "quit"):
        add_to(window.file_menu, window.actions, name)
    window.view_menu = bar.addMenu("")
    for name in ("page_search", "page_transfers", "page_shared", None, "find"):
        add_to(window.view_menu, window.actions, name)
    window.transfers_menu = bar.addMenu("")
    for name in ("download", "details", None, *DOWNLOAD_COMMANDS, None, "alt_limits"):
        add_to(window.transfers_menu, window.actions, name)
    window.help_menu = bar.addMenu("")
    window.help_menu.addAction(a["about"])

    window.toolbar = QToolBar(window)
    window.toolbar.setObjectName("main_toolbar")
    window.toolbar.setMovable(False)
    window.toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
    window.toolbar.setIconSize(QSize(18, 18))
    for name in (
        "download",
        None,
        "pause",
        "resume",
        "retry",
        "cancel",
        "play",
        "open_file",
        "show_in_folder",
        None,
        "add_files",
        "open_shared",
        None,
        "alt_limits",
        "settings",
    ):
        add_to(window.toolbar, window.actions, name)
    window.addToolBar(Qt.ToolBarArea.TopToolBarArea, window.toolbar)
    # A switch like qBittorrent's turtle: the icon, its checked look and its tooltip say
    # enough, and its text would push Settings off a narrow toolbar.
    limits_button = window.toolbar.widgetForAction(window.actions["alt_limits"])
    limits_button.setObjectName("alt_limits_button")
    limits_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonIconOnly)
    window.view_menu.addSeparator()
    window.toggle_toolbar = window.toolbar.toggleViewAction()
    window.view_menu.addAction(window.toggle_toolbar)


def add_to(target: QMenu | QToolBar, actions: dict[str, QAction], name: str | None) -> None:
    """A named action, or a separator for None."""
    if name is None:
        target.addSeparator()
    else:
        target.addAction(actions[name])


def make_tray(window: MainWindow) -> QSystemTrayIcon | None:
    """The tray icon with Show and Quit, where the desktop has a tray."""
    if not QSystemTrayIcon.isSystemTrayAvailable():
        return None
    tray = QSystemTrayIcon(app_icon(), window)
    menu = QMenu(window)
    window.tray_show = menu.addAction("", window.show_from_tray)
    window.tray_quit = menu.addAction("", window.close)
    tray.setContextMenu(menu)
    tray.activated.connect(
        lambda reason: (
            reason == QSystemTrayIcon.ActivationReason.Trigger and window.show_from_tray()
        )
    )
    tray.show()
    return tray


def retranslate_actions(window: MainWindow) -> None:
    """The texts of the actions, menus, toolbar and tray in the current language."""
    texts = {
        "add_files": (
            translate("MainWindow", "&Add Files to Share…"),
            translate("MainWindow", "Copy files into the shared folder"),
        ),
        "open_shared": (
            translate("MainWindow", "Open &Shared Folder"),
            translate("MainWindow", "Open the shared folder"),
        ),
        "open_downloads": (
            translate("MainWindow", "Open &Download Folder"),
            translate("MainWindow", "Open the folder downloads go to"),
        ),
        "settings": (
            translate("MainWindow", "S&ettings…"),
            translate("MainWindow", "Server, folders, ports, language"),
        ),
        "quit": (
            translate("MainWindow", "&Quit"),
            translate("MainWindow", "Leave the network and quit"),
        ),
        "page_search": (translate("MainWindow", "&Search"), ""),
        "page_transfers": (translate("MainWindow", "&Transfers"), ""),
        "page_shared": (translate("MainWindow", "Shared &Files"), ""),
        "find": (translate("MainWindow", "&Find…"), translate("MainWindow", "Type a new search")),
        "download": (
            translate("MainWindow", "&Download"),
            translate("MainWindow", "Download the selected search results"),
        ),
        "details": (
            translate("MainWindow", "Det&ails…"),
            translate(
                "MainWindow", "Show the selected result's size, hash and every source's address"
            ),
        ),
        "copy_sources": (
            translate("MainWindow", "Copy Source &Addresses"),
            translate(
                "MainWindow", "Copy the host:port of every peer sharing the selected results"
            ),
        ),
        "alt_limits": (
            translate("MainWindow", "Alternative Speed &Limits"),
            translate("MainWindow", "Switch to the alternative speed limits set in Settings"),
        ),
        "pause": (
            translate("MainWindow", "&Pause"),
            translate("MainWindow", "Pause the selected downloads"),
        ),
        "resume": (
            translate("MainWindow", "&Resume"),
            translate("MainWindow", "Resume the selected downloads"),
        ),
        "cancel": (
            translate("MainWindow", "&Cancel"),
            translate("MainWindow", "Cancel the selected downloads"),
        ),
        "retry": (
            translate("MainWindow", "Re&try"),
            translate("MainWindow", "Try the selected failed downloads again"),
        ),
        "play": (
            translate("MainWindow", "P&lay"),
            translate(
                "MainWindow", "Play the selected file in your video player, even while it downloads"
            ),
        ),
        "open_file": (
            translate("MainWindow", "&Open"),
            translate("MainWindow", "Open the downloaded file"),
        ),
        "show_in_folder": (
            translate("MainWindow", "Show in &Folder"),
            translate("MainWindow", "Open the folder that holds the file"),
        ),
        "clear_finished": (
            translate("MainWindow", "C&lear Finished"),
            translate("MainWindow", "Remove finished downloads from the list (the files stay)"),
        ),
        "about": (translate("MainWindow", "&About Napster P2P"), ""),
    }
    for name, (text, tip) in texts.items():
        action = window.actions[name]
        action.setText(text)
        shortcut = action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
        tip = tip or text.replace("&", "").rstrip("…")
        action.setToolTip(f"{tip} ({shortcut})" if shortcut else tip)
        action.setStatusTip(tip)
    window.actions["open_file"].setIconText(translate("MainWindow", "Open"))
    window.actions["show_in_folder"].setIconText(translate("MainWindow", "Show in Folder"))
    window.actions["add_files"].setIconText(translate("MainWindow", "Add Files"))
    window.actions["open_shared"].setIconText(translate("MainWindow", "Shared Folder"))
    window.actions["settings"].setIconText(translate("MainWindow", "Settings"))
    window.actions["alt_limits"].setIconText(translate("MainWindow", "Alternative Limits"))
    window.file_menu.setTitle(translate("MainWindow", "&File"))
    window.view_menu.setTitle(translate("MainWindow", "&View"))
    window.transfers_menu.setTitle(translate("MainWindow", "&Transfers"))
    window.help_menu.setTitle(translate("MainWindow", "&Help"))
    window.toolbar.setWindowTitle(translate("MainWindow", "Toolbar"))
    window.toggle_toolbar.setText(translate("MainWindow", "Show &Toolbar"))
    if window.tray is not None:
        window.tray.setToolTip(translate("MainWindow", "Napster P2P"))
        window.tray_show.setText(translate("MainWindow", "Show Window"))
        window.tray_quit.setText(translate("MainWindow", "Quit"))
