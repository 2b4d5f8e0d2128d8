"""dev.py: on a desktop that lacks Qt's X11 libraries, `dev.py run` says what to install."""

from __future__ import annotations

import importlib.util

from tests.test_server_cli import ROOT

spec = importlib.util.spec_from_file_location("dev_script", ROOT / "dev.py")
dev = importlib.util.module_from_spec(spec)
spec.loader.exec_module(dev)

LDD = """\
\tlinux-vdso.so.1 (0x00007ffd)
\tlibxcb-icccm.so.4 => not found
\tlibxcb-keysyms.so.1 => not found
\tlibxcb.so.1 => /lib/x86_64-linux-gnu/libxcb.so.1 (0x00007f)
\tlibxcb-icccm.so.4 => not found
\tlibunknown.so.3 => not found
"""

DEBIAN = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\n'
UBUNTU = "ID=ubuntu\nID_LIKE=debian\n"
FEDORA = 'ID=fedora\nVERSION_ID="40"\n'


def test_the_missing_libraries_are_read_from_ldd_once_each():
    assert dev.missing_libraries(LDD, cursor_found=True) == [
        "libxcb-icccm.so.4",
        "libxcb-keysyms.so.1",
    ]
    assert dev.missing_libraries("", cursor_found=False) == ["libxcb-cursor.so.0"]


def test_one_install_command_for_the_distribution_found():
    missing = ["libxcb-icccm.so.4", "libxcb-keysyms.so.1"]
    assert (
        dev.install_command(missing, DEBIAN) == "sudo apt-get install libxcb-icccm4 libxcb-keysyms1"
    )
    assert dev.install_command(missing, UBUNTU).startswith("sudo apt-get install")
    assert dev.install_command(missing, FEDORA) == "sudo dnf install xcb-util-keysyms xcb-util-wm"
    assert "libxcb-icccm.so.4" in dev.install_command(missing, "ID=plan9\n")


def test_nothing_to_say_when_the_window_system_is_not_x11(monkeypatch, tmp_path):
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    assert dev.desktop_problem(tmp_path / "python") is None
