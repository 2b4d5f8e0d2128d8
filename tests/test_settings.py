"""Settings (typed QSettings in a temporary file), the first-run form, and the translations."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from PySide6.QtCore import QByteArray, QCoreApplication, QLocale, QTranslator
from PySide6.QtWidgets import QDialogButtonBox

from app import i18n
from app.network.protocol import DEFAULT_PEER_PORT
from app.settings import Settings, default_download_dir, default_share_dir
from app.ui.dialogs import SettingsDialog, SettingsValues
from app.ui.validation import (
    KB,
    MB,
    parse_rate,
    parse_server_address,
    parse_server_list,
    rate_parts,
)


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
    assert dialog.servers.toPlainText() == "127.0.0.1:1099"
    assert not dialog.advanced.isVisibleTo(dialog)

    dialog.servers.setPlainText("10.0.0.5:99999")
    assert not ok.isEnabled()
    assert "Port 99999 is outside 1 to 65535." in dialog.error.text()
    dialog.servers.setPlainText(" 10.0.0.5:7000 ")
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


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:21099", ("127.0.0.1", 21099)),
        (" index.example.org:2000 ", ("index.example.org", 2000)),
        ("localhost", ("localhost", 1099)),
        ("servidor-da-turma", ("servidor-da-turma", 1099)),
        ("[::1]:7000", ("::1", 7000)),
        ("[2001:db8::1]", ("2001:db8::1", 1099)),
    ],
)
def test_server_addresses_people_write_are_accepted(text, expected):
    assert parse_server_address(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("127.0.0.1;21099", "“;” cannot be part of a server address"),
        ("127.0.0.1,21099", "Separate the port with a colon, e.g. 127.0.0.1:21099."),
        ("127.0.0.1 21099", "Separate the port with a colon"),
        ("300.1.1.1:1099", "“300.1.1.1” is not a valid IPv4 address."),
        ("::1:1099", "Put an IPv6 address in brackets"),
        ("[::1:1099", "no closing “]”"),
        ("[::zz]:1099", "“::zz” is not a valid IPv6 address."),
        ("host:", "Write the port number after the colon"),
        ("host:port", "“port” is not a port number"),
        ("host:0", "Port 0 is outside 1 to 65535."),
        (":1099", "There is no host name before the colon"),
        ("-bad.example:1099", "“-bad.example” is not a valid host name."),
        ("a..b:1099", "“a..b” is not a valid host name."),
        ("", "Type the server's address"),
    ],
)
def test_server_addresses_that_cannot_work_are_refused_with_a_reason(text, message):
    with pytest.raises(ValueError) as refused:
        parse_server_address(text)
    assert message in str(refused.value)


@pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")
def test_the_settings_form_refuses_a_bad_address_while_typing(qtbot, tmp_path):
    """The finding: ``127.0.0.1;21099`` was saved as ``127.0.0.1;21099:1099``."""
    settings = Settings.from_file(tmp_path / "typing.ini")
    dialog = SettingsDialog(SettingsValues.load(settings))
    qtbot.addWidget(dialog)
    dialog.show()
    ok = dialog.buttons.button(QDialogButtonBox.StandardButton.Ok)
    dialog.servers.clear()
    qtbot.keyClicks(dialog.servers, "127.0.0.1;21099")
    assert not ok.isEnabled()
    assert dialog.error.isVisible()
    assert dialog.error.text() == (
        "Index server: “;” cannot be part of a server address. Separate the port with a colon, "
        "e.g. 127.0.0.1:21099."
    )
    dialog.servers.setPlainText("[::1]:21099")
    assert ok.isEnabled() and not dialog.error.isVisible()
    assert dialog.values().server_addresses == ("[::1]:21099",)


def test_speed_limits_are_typed_in_units_people_read():
    assert parse_rate("", MB) == 0
    assert parse_rate(" 0 ", KB) == 0
    assert parse_rate("10", MB) == 10_000_000
    assert parse_rate("1,5", MB) == 1_500_000
    assert parse_rate("1.5", MB) == 1_500_000
    assert parse_rate("500", KB) == 500_000
    for bad in ("ten", "-1", "1.2.3", "nan"):
        with pytest.raises(ValueError):
            parse_rate(bad, MB)
    assert rate_parts(0) == ("", MB)
    assert rate_parts(10_000_000) == ("10", MB)
    assert rate_parts(1_500_000) == ("1.5", MB)
    assert rate_parts(500_000) == ("500", KB)


@pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")
def test_the_settings_form_edits_both_pairs_of_limits_and_shows_the_real_port(qtbot, tmp_path):
    path = tmp_path / "limits.ini"
    settings = Settings.from_file(path)
    assert (settings.max_upload_rate, settings.alt_download_rate) == (0, 0)
    assert settings.use_alt_rates is False
    values = replace(SettingsValues.load(settings), listen_port=6000, listening_port=45123)
    dialog = SettingsDialog(values)
    qtbot.addWidget(dialog)
    dialog.show()
    assert dialog.listening.isVisible()
    assert dialog.listening.text() == "now listening on port 45123"
    assert dialog.up_rate.edit.text() == "" and dialog.up_rate.edit.placeholderText() == "no limit"
    ok = dialog.buttons.button(QDialogButtonBox.StandardButton.Ok)

    dialog.up_rate.edit.setText("lots")
    assert not ok.isEnabled()
    assert dialog.error.text() == "Speed limit for “Upload”: “lots” is not a number."
    dialog.up_rate.edit.setText("10")
    dialog.up_rate.unit.setCurrentIndex(dialog.up_rate.unit.findData(MB))
    dialog.alt_up_rate.edit.setText("100")
    dialog.alt_up_rate.unit.setCurrentIndex(dialog.alt_up_rate.unit.findData(KB))
    dialog.alt_down_rate.edit.setText("0,5")
    dialog.alt_down_rate.unit.setCurrentIndex(dialog.alt_down_rate.unit.findData(MB))
    assert ok.isEnabled()
    dialog.values().save(settings)

    stored = Settings.from_file(path)
    assert stored.max_upload_rate == 10_000_000
    assert stored.max_download_rate == 0
    assert stored.alt_upload_rate == 100_000
    assert stored.alt_download_rate == 500_000
    again = SettingsDialog(SettingsValues.load(stored))
    qtbot.addWidget(again)
    assert again.up_rate.edit.text() == "10" and again.up_rate.unit.currentText() == "MB/s"
    assert again.alt_up_rate.edit.text() == "100"
    assert again.alt_up_rate.unit.currentText() == "KB/s"
    assert not again.listening.isVisibleTo(again)  # not running: no port to tell


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


def test_the_new_window_strings_are_in_portuguese(portuguese):
    from app.ui.models import UploadRow, UploadsModel

    with pytest.raises(ValueError) as refused:
        parse_server_address("127.0.0.1;21099")
    assert str(refused.value) == (
        "“;” não pode fazer parte do endereço de um servidor. Separe a porta com dois-pontos, "
        "por exemplo 127.0.0.1:21099."
    )
    model = UploadsModel()
    assert model.state_text(UploadRow("10.0.0.7", "a.mp4", 10)) == "Ocioso"
    assert model.headers()[2] == "Tamanho"
    tr = QCoreApplication.translate
    assert tr("SearchPage", "Show more") == "Mostrar mais"
    assert tr("MainWindow", "Alternative Speed &Limits") == "&Limites de velocidade alternativos"
    assert tr("StatusArea", "Session: {down} down, {up} up") == (
        "Sessão: {down} recebidos, {up} enviados"
    )


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
    settings.max_upload_rate = 2_000_000
    settings.max_download_rate = 5_000_000

    saved = config_from_settings(settings, parse_args([]))
    assert (saved.max_upload_rate, saved.max_download_rate) == (2_000_000, 5_000_000)
    limited = config_from_settings(settings, parse_args(["--max-download-rate", "1M"]))
    assert (limited.max_upload_rate, limited.max_download_rate) == (2_000_000, 1_000_000)
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


# ---------------------------------------------------------------- several index servers


def test_the_list_of_index_servers_round_trips(tmp_path):
    path = tmp_path / "servers.ini"
    settings = Settings.from_file(path)
    assert settings.server_addresses == ["127.0.0.1:1099"]
    settings.server_addresses = ["a.lan:2000", "[::1]:2001", "10.0.0.9:2002"]
    settings.sync()
    again = Settings.from_file(path)
    assert again.server_addresses == ["a.lan:2000", "[::1]:2001", "10.0.0.9:2002"]
    assert again.server_address == "a.lan:2000"  # the first, for older readers
    again.server_addresses = ["only.lan:3000"]  # one alone reads back as a list too
    again.sync()
    assert Settings.from_file(path).server_addresses == ["only.lan:3000"]
    again.reset("server_addresses")
    assert again.server_addresses == ["127.0.0.1:1099"]


def test_the_old_single_server_setting_is_read_and_replaced_when_saved(tmp_path):
    path = tmp_path / "old.ini"
    path.write_text("[network]\nserver=index.lan:2000\n", encoding="utf-8")
    settings = Settings.from_file(path)
    assert settings.server_addresses == ["index.lan:2000"]
    assert path.read_text(encoding="utf-8") == "[network]\nserver=index.lan:2000\n"  # untouched
    settings.server_addresses = ["index.lan:2000", "backup.lan:2000"]
    settings.sync()
    saved = path.read_text(encoding="utf-8")
    assert "servers=index.lan:2000, backup.lan:2000" in saved and "server=" not in saved
    # A list written by hand as one line is read too.
    path.write_text("[network]\nservers=a:1 b:2\n", encoding="utf-8")
    assert Settings.from_file(path).server_addresses == ["a:1", "b:2"]


def test_a_list_of_servers_is_checked_line_by_line():
    assert parse_server_list("a.lan:2000\n\n  # backup\nb.lan\na.lan:2000\n") == [
        ("a.lan", 2000),
        ("b.lan", 1099),
    ]
    with pytest.raises(ValueError, match=r"^Line 3: “;” cannot be part of a server address"):
        parse_server_list("a.lan:2000\n\nb;c\n")
    with pytest.raises(ValueError, match="Type the server's address"):
        parse_server_list(" \n# nothing\n")


@pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")
def test_the_settings_form_edits_several_servers(qtbot, tmp_path):
    settings = Settings.from_file(tmp_path / "several.ini")
    settings.server_addresses = ["a.lan:2000", "b.lan:2001"]
    dialog = SettingsDialog(SettingsValues.load(settings))
    qtbot.addWidget(dialog)
    dialog.show()
    ok = dialog.buttons.button(QDialogButtonBox.StandardButton.Ok)
    assert dialog.servers.toPlainText() == "a.lan:2000\nb.lan:2001"
    dialog.servers.setPlainText("a.lan:2000\nb.lan:99999\n")
    assert not ok.isEnabled()
    assert dialog.error.text() == "Index server: Line 2: Port 99999 is outside 1 to 65535."
    dialog.servers.setPlainText("a.lan:2000\n[::1]:2001\nc.lan\n")
    assert ok.isEnabled()
    assert dialog.values().server_addresses == ("a.lan:2000", "[::1]:2001", "c.lan:1099")
    dialog.values().save(settings)
    assert Settings.from_file(tmp_path / "several.ini").server_addresses == [
        "a.lan:2000",
        "[::1]:2001",
        "c.lan:1099",
    ]


def test_servers_come_from_repeated_options_a_file_or_the_settings(tmp_path, capsys):
    from app.__main__ import parse_args
    from app.config import config_from_settings, parse_servers_file

    listed = tmp_path / "servers.txt"
    listed.write_text(
        "# the campus index servers\nidx1.lan:2000\n\n  idx2.lan   # the backup\n[::1]:2002\n",
        encoding="utf-8",
    )
    assert parse_servers_file(listed) == [("idx1.lan", 2000), ("idx2.lan", 1099), ("::1", 2002)]

    settings = Settings.from_file(tmp_path / "saved.ini")
    settings.server_addresses = ["saved.lan:1", "not an address", "saved2.lan:2"]
    saved = config_from_settings(settings, parse_args([]))
    assert saved.servers == [("saved.lan", 1), ("saved2.lan", 2)]  # the bad one left out
    assert (saved.server_host, saved.server_port) == ("saved.lan", 1)

    given = config_from_settings(
        settings,
        parse_args(["--server", "a:1", "--server", "b:2", "--servers-file", str(listed)]),
    )
    assert given.servers == [
        ("a", 1),
        ("b", 2),
        ("idx1.lan", 2000),
        ("idx2.lan", 1099),
        ("::1", 2002),
    ]
    assert given.servers_text() == "a:1, b:2, idx1.lan:2000, idx2.lan:1099, [::1]:2002"

    bad = tmp_path / "bad.txt"
    bad.write_text("idx1.lan:2000\n# fine\nidx2.lan:http\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.txt, line 3: 'http' is not a port number"):
        parse_servers_file(bad)
    with pytest.raises(SystemExit):
        parse_args(["--servers-file", str(bad)])
    assert "--servers-file: " in capsys.readouterr().err
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing yet\n", encoding="utf-8")
    with pytest.raises(ValueError, match="lists no index server"):
        parse_servers_file(empty)
    with pytest.raises(SystemExit):
        parse_args(["--servers-file", str(tmp_path / "missing.txt")])
    assert "cannot read" in capsys.readouterr().err
