"""Every string the peer shows through tr() has a Brazilian Portuguese translation."""

from __future__ import annotations

import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from tests.test_server_cli import ROOT


def test_every_peer_string_is_translated_into_portuguese(tmp_path):
    lupdate = Path(sys.executable).with_name("pyside6-lupdate")
    assert lupdate.exists(), "pyside6-lupdate comes with PySide6-Essentials"
    copy = tmp_path / "pt_BR.ts"
    shutil.copyfile(ROOT / "resources" / "i18n" / "napster_pt_BR.ts", copy)
    sources = sorted(str(path) for path in (ROOT / "app").rglob("*.py"))
    subprocess.run(
        [str(lupdate), *sources, "-ts", str(copy), "-no-obsolete"], check=True, capture_output=True
    )
    missing = []
    for context in ET.parse(copy).getroot().iter("context"):
        for message in context.iter("message"):
            translation = message.find("translation")
            if (
                translation is None
                or translation.get("type") == "unfinished"
                or not (translation.text or "").strip()
            ):
                missing.append((context.findtext("name"), message.findtext("source")))
    assert missing == []
