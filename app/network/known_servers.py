"""Index servers' certificate fingerprints, remembered on first use (no Qt).

A peer trusts an index server's identity the first time it connects (as SSH does with a
host key) and from then on refuses that address if it presents another certificate: a
changed fingerprint means another machine answers there, or the operator made a new key.
The user decides which (``forget`` lets the next connection remember the new one).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from enum import Enum
from pathlib import Path

log = logging.getLogger("napster.peer")


class Verdict(str, Enum):
    """What a server's fingerprint is, against what was remembered for its address."""

    NEW = "new"  # never seen: remembered now
    KNOWN = "known"  # the same as before
    CHANGED = "changed"  # another certificate than before: refuse


class KnownServers:
    """``host:port`` -> fingerprint, kept in a JSON file (None: in memory only)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._known: dict[str, str] = self._load()

    def _load(self) -> dict[str, str]:
        if self.path is None:
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("Ignoring the remembered index servers in %s: %s", self.path, exc)
            return {}
        if not isinstance(data, dict):
            return {}
        return {str(k): v for k, v in data.items() if isinstance(v, str) and len(v) == 64}

    def fingerprint_of(self, address: str) -> str | None:
        with self._lock:
            return self._known.get(address)

    def check(self, address: str, fingerprint: str) -> Verdict:
        """Compare with what was remembered; a first fingerprint is remembered."""
        with self._lock:
            known = self._known.get(address)
            if known == fingerprint:
                return Verdict.KNOWN
            if known is not None:
                return Verdict.CHANGED
            self._known[address] = fingerprint
            self._save()
            return Verdict.NEW

    def replace(self, address: str, fingerprint: str) -> None:
        """Remember ``fingerprint`` for ``address`` from now on (the user trusted it)."""
        with self._lock:
            self._known[address] = fingerprint
            self._save()

    def forget(self, address: str) -> None:
        """Accept whatever certificate ``address`` presents next (and remember that one)."""
        with self._lock:
            if self._known.pop(address, None) is not None:
                self._save()

    def _save(self) -> None:
        if self.path is None:
            return
        temporary = self.path.with_name(self.path.name + ".napster-tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary.write_text(json.dumps(self._known, indent=1, sort_keys=True), "utf-8")
            os.replace(temporary, self.path)
        except OSError as exc:
            log.warning("Cannot remember the index servers in %s: %s", self.path, exc)
