"""Settings (typed QSettings in a temporary file), the first-run form, and the translations."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QByteArray, QCoreApplication, QLocale, QTranslator
from PySide6.QtWidgets import QDialogButtonBox

from app import i18n
from app.network.protocol import DEFAULT_PEER_PORT
from app.settings import Settings, default_download_dir, default_share_dir
from app.ui.dialogs import SettingsDialog, SettingsValues


def test_defaults_are_typed_and_sensible(tmp_path, isolated_home):
    settings = Settings.from_file(tmp_path / "fresh.ini")
    assert settings.server_address == "127.0.0.1:1099"
    assert settings.listen_port == DEFAULT_PEER_PORT and isinstance(settings.listen_port, int)
    assert settings.upload_slots == 4
    assert settings.max_downloads == 3
    assert settings.language == ""
    assert settings.setup_done is False
    assert settings.notify_finished is True
    assert settings.share_dir == default_share_dir() == isolated_home / "Napster" / "Shared"
    assert settings.download_dir == default_download_dir()
    assert isinstance(settings.share_dir, Path)
    assert settings.window_state("geometry") is None


def test_settings_persist_in_their_file(tmp_path):
    path = tmp_path / "peer.ini"
    settings = Settings.from_file(path)
    settings.server_address = "index.example:2000"
    settings.listen_port = 0
    settings.share_dir = tmp_path / "share"
    settings.upload_slots = 9
    settings.max_downloads = 1
    settings.language = "pt_BR"
    settings.setup_done = True
    settings.notify_finished = False
    settings.set_window_state("geometry", QByteArray(b"\x01\x02"))
    settings.sync()
    del settings

    again = Settings.from_file(path)
    assert again.server_address == "index.example:2000"
    assert again.listen_port == 0
    assert again.share_dir == tmp_path / "share"
    assert again.upload_slots == 9
    assert again.max_downloads == 1
    assert again.language == "pt_BR"
    assert again.setup_done is True
    assert again.notify_finished is False
    assert bytes(again.window_state("geometry").data()) == b"\x01\x02"
    again.reset("upload_slots")
    assert again.upload_slots == 4


def test_values_out_of_range_are_refused_and_garbage_reads_as_the_default(tmp_path):
    path = tmp_path / "edited.ini"
    path.write_text(
        "[network]\nlisten_port=seventy\n[transfers]\nupload_slots=0\nmax_downloads=true\n"
        "[interface]\nlanguage=klingon\nsetup_done=maybe\n"
    )
    settings = Settings.from_file(path)
    assert settings.listen_port == DEFAULT_PEER_PORT
    assert settings.upload_slots == 4
    assert settings.max_downloads == 3
    assert settings.language == ""
    assert settings.setup_done is False
    with pytest.raises(ValueError):
        settings.listen_port = 70000
    with pytest.raises(ValueError):
        settings.language = "xx"


def test_first_run_form_checks_the_address_and_remembers_the_answers(qtbot, tmp_path):
    path = tmp_path / "first.ini"
    settings = Settings.from_file(path)
    dialog = SettingsDialog(SettingsValues.load(settings), first_run=True)
    qtbot.addWidget(dialog)
    ok = dialog.buttons.button(QDialogButtonBox.StandardButton.Ok)
    assert dialog.windowTitle() == "Welcome to Napster P2P"
    assert ok.text() == "Start" and ok.isEnabled()
    assert dialog.server.text() == "127.0.0.1:1099"
    assert not dialog.advanced.isVisibleTo(dialog)

    dialog.server.setText("10.0.0.5:99999")
    assert not ok.isEnabled()
    assert "port 99999 is outside 1-65535" in dialog.error.text()
    dialog.server.setText(" 10.0.0.5:7000 ")
    dialog.share.edit.setText("relative/folder")
    assert not ok.isEnabled()
    dialog.share.edit.setText(str(tmp_path / "my share"))
    dialog.downloads.edit.setText(str(tmp_path / "my downloads"))
    assert ok.isEnabled() and not dialog.error.isVisibleTo(dialog)

    dialog.values().save(settings)
    stored = Settings.from_file(path)
    assert stored.setup_done is True
    assert stored.server_address == "10.0.0.5:7000"
    assert stored.share_dir == tmp_path / "my share"
    assert stored.download_dir == tmp_path / "my downloads"


# ---------------------------------------------------------------- translations


@pytest.fixture
def portuguese(tmp_path, qapp):
    """The Portuguese catalog, compiled by the built-in writer, installed for one test."""
    qm = i18n.compile_ts(
        i18n.i18n_dir() / "napster_pt_BR.ts", tmp_path / "pt_BR.qm", use_lrelease=False
    )
    translator = QTranslator()
    assert translator.load(str(qm))
    QCoreApplication.installTranslator(translator)
    yield translator
    QCoreApplication.removeTranslator(translator)


def test_built_in_qm_writer_makes_a_catalog_qt_reads(portuguese):
    tr = QCoreApplication.translate
    assert tr("StatusArea", "Offline") == "Desconectado"
    assert tr("MainWindow", "&File") == "&Arquivo"
    assert tr("Transfers", "Paused") == "Pausado"
    assert tr("MainWindow", "a text nobody translated") == "a text nobody translated"


def test_console_lines_follow_the_original_assignment_in_portuguese(portuguese):
    tr = QCoreApplication.translate
    joined = tr("ConsoleMenu", "I am peer {address} with files {names}").format(
        address="127.0.0.1:8776", names="aula1.mp4 aula2.mp4"
    )
    assert joined == "Sou peer 127.0.0.1:8776 com arquivos aula1.mp4 aula2.mp4"
    found = tr("ConsoleMenu", "peers with the requested file: {peers}").format(
        peers="127.0.0.1:8776"
    )
    assert found == "peers com arquivo solicitado: 127.0.0.1:8776"
    done = tr("ConsoleMenu", "File {name} downloaded successfully to folder {folder}").format(
        name="aula.mp4", folder="/home/ana/Downloads"
    )
    assert done == "Arquivo aula.mp4 baixado com sucesso na pasta /home/ana/Downloads"


def test_every_translation_keeps_the_placeholders_of_its_source():
    _language, messages = i18n.read_ts(i18n.i18n_dir() / "napster_pt_BR.ts")
    assert len(messages) > 150
    for message in messages:
        fields = sorted(part.split("}")[0] for part in message.source.split("{")[1:])
        translated = sorted(part.split("}")[0] for part in message.translation.split("{")[1:])
        assert fields == translated, message.source


def test_catalog_compiles_on_demand_and_the_language_follows_the_system(qapp, isolated_home):
    installed = i18n.Translations()
    try:
        assert i18n.available_languages() == ["en", "pt_BR"]
        assert i18n.resolve_language("", QLocale("pt_BR")) == "pt_BR"
        assert i18n.resolve_language("", QLocale("pt_PT")) == "pt_BR"
        assert i18n.resolve_language("", QLocale("de_DE")) == "en"
        assert i18n.resolve_language("en", QLocale("pt_BR")) == "en"
        assert installed.apply("pt_BR") == "pt_BR"
        assert QCoreApplication.translate("StatusArea", "Offline") == "Desconectado"
        compiled = i18n.qm_path("pt_BR")
        assert compiled is not None and compiled.is_file()
        assert installed.apply("en") == "en"
        assert QCoreApplication.translate("StatusArea", "Offline") == "Offline"
    finally:
        installed.apply("en")


def test_the_command_line_overrides_the_saved_settings(tmp_path):
    from app.__main__ import parse_args
    from app.ui.main_window import config_from_settings

    settings = Settings.from_file(tmp_path / "saved.ini")
    settings.server_address = "index.lan:2000"
    settings.share_dir = tmp_path / "saved share"
    settings.upload_slots = 6
    settings.listen_port = 7001

    saved = config_from_settings(settings, parse_args([]))
    assert (saved.server_host, saved.server_port) == ("index.lan", 2000)
    assert saved.share_dir == tmp_path / "saved share"
    assert saved.listen_port == 7001
    assert saved.upload_slots == 6

    given = config_from_settings(
        settings,
        parse_args(["--server", "127.0.0.1:1099", "--share", str(tmp_path), "--port", "0"]),
    )
    assert (given.server_host, given.server_port) == ("127.0.0.1", 1099)
    assert given.share_dir == tmp_path.resolve()
    assert given.listen_port == 0
    assert given.download_dir == settings.download_dir


def test_numbers_follow_the_language():
    from app.ui.formatting import format_count, format_duration, format_size

    try:
        QLocale.setDefault(QLocale("pt_BR"))
        assert format_count(1234) == "1.234"
        assert format_size(87_200_000_000) == "87,2 GB"
        QLocale.setDefault(QLocale("en_US"))
        assert format_count(1234) == "1,234"
        assert format_size(87_200_000_000) == "87.2 GB"
        assert format_size(12_400_000_000) == "12.4 GB"
        assert format_size(999) == "999 B"
        assert format_duration(8) == "8 s"
        assert format_duration(200) == "3 min 20 s"
        assert format_duration(7500) == "2 h 05 min"
        assert format_duration(None) == ""
    finally:
        QLocale.setDefault(QLocale("en_US"))


def test_lrelease_and_the_built_in_writer_agree(tmp_path, qapp):
    if i18n.find_lrelease() is None:
        pytest.fail("pyside6-lrelease ships with PySide6-Essentials; the venv should have it")
    source = i18n.i18n_dir() / "napster_pt_BR.ts"
    ours = i18n.compile_ts(source, tmp_path / "ours.qm", use_lrelease=False)
    theirs = i18n.compile_ts(source, tmp_path / "theirs.qm", use_lrelease=True)
    _language, messages = i18n.read_ts(source)
    translators = []
    for path in (ours, theirs):
        translator = QTranslator()
        assert translator.load(str(path))
        translators.append(translator)
    for message in messages:
        texts = {t.translate(message.context, message.source) for t in translators}
        assert texts == {message.translation}, message.source
