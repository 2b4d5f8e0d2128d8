"""What the user types in Settings, checked while typing: server addresses and speed limits.

Pure functions (no widgets); a refusal is a ``ValueError`` whose text is shown as it is, in
the current language.
"""

from __future__ import annotations

import ipaddress
import math
import re

from PySide6.QtCore import QCoreApplication, QLocale

from app.network.protocol import DEFAULT_SERVER_PORT
from app.settings import MAX_RATE

translate = QCoreApplication.translate

KB = 1000
MB = 1000 * 1000
#: The units a speed limit is typed in, in bytes per second.
RATE_UNITS = (KB, MB)

_PORT_RE = re.compile(r"[0-9]{1,5}")
_IPV4_LIKE_RE = re.compile(r"[0-9.]+")
_MISTYPED_PORT_RE = re.compile(r"([^;,\s]+)[;,\s]+([0-9]{1,5})")


def _example(host: str = "127.0.0.1") -> str:
    return f"{host}:{DEFAULT_SERVER_PORT}"


def _refuse(text: str) -> ValueError:
    return ValueError(text)


def _check_port(text: str) -> int:
    if not text:
        raise _refuse(
            translate(
                "Validation", "Write the port number after the colon, e.g. {example}."
            ).format(example=_example())
        )
    if not _PORT_RE.fullmatch(text):
        raise _refuse(
            translate("Validation", "“{port}” is not a port number (1 to 65535).").format(port=text)
        )
    port = int(text)
    if not 1 <= port <= 65535:
        raise _refuse(
            translate("Validation", "Port {port} is outside 1 to 65535.").format(port=port)
        )
    return port


def _check_host_name(host: str, example: str) -> None:
    """An IPv4 address or a host name (letters, digits and hyphens, dot-separated labels)."""
    if _IPV4_LIKE_RE.fullmatch(host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise _refuse(
                translate("Validation", "“{host}” is not a valid IPv4 address.").format(host=host)
            ) from None
        return
    for char in host:
        if not (char.isalnum() or char in "-."):
            if char in ";,/ " or char.isspace():
                raise _refuse(
                    translate(
                        "Validation",
                        "“{char}” cannot be part of a server address. Separate the port with "
                        "a colon, e.g. {example}.",
                    ).format(char=char if not char.isspace() else " ", example=example)
                )
            raise _refuse(
                translate("Validation", "“{char}” cannot be part of a server address.").format(
                    char=char
                )
            )
    if len(host) > 253:
        raise _refuse(translate("Validation", "The host name is too long."))
    for label in host.split("."):
        if not label or len(label) > 63 or label.startswith("-") or label.endswith("-"):
            raise _refuse(
                translate("Validation", "“{host}” is not a valid host name.").format(host=host)
            )


def parse_server_address(text: str) -> tuple[str, int]:
    """``"host"``, ``"host:port"``, ``"1.2.3.4:port"`` or ``"[v6]:port"`` -> (host, port).

    The port defaults to the index server's usual one. Raises ValueError with a message for
    the user (``127.0.0.1;21099`` is refused, never read as a host named that).
    """
    text = text.strip()
    if not text:
        raise _refuse(
            translate("Validation", "Type the server's address, e.g. {example}.").format(
                example=_example()
            )
        )
    if text.startswith("["):
        inside, bracket, rest = text[1:].partition("]")
        if not bracket:
            raise _refuse(
                translate(
                    "Validation", "The IPv6 address has no closing “]”, e.g. {example}."
                ).format(example=_example("[::1]"))
            )
        try:
            ipaddress.IPv6Address(inside)
        except ValueError:
            raise _refuse(
                translate("Validation", "“{host}” is not a valid IPv6 address.").format(host=inside)
            ) from None
        if not rest:
            return inside, DEFAULT_SERVER_PORT
        if not rest.startswith(":"):
            raise _refuse(
                translate("Validation", "Write the port after a colon, e.g. {example}.").format(
                    example=_example("[::1]")
                )
            )
        return inside, _check_port(rest[1:])
    if text.count(":") > 1:
        raise _refuse(
            translate("Validation", "Put an IPv6 address in brackets, e.g. {example}.").format(
                example=_example("[::1]")
            )
        )
    host, colon, port_text = text.partition(":")
    if not host:
        raise _refuse(
            translate(
                "Validation", "There is no host name before the colon, e.g. {example}."
            ).format(example=_example())
        )
    # "127.0.0.1;21099" most likely meant "127.0.0.1:21099": say exactly that.
    mistyped = _MISTYPED_PORT_RE.fullmatch(host)
    _check_host_name(host, f"{mistyped[1]}:{mistyped[2]}" if mistyped else _example())
    return host, _check_port(port_text) if colon else DEFAULT_SERVER_PORT


def parse_server_list(text: str) -> list[tuple[str, int]]:
    """Index server addresses, one a line (blank lines and ``#`` comments ignored), each as
    ``parse_server_address`` reads it -> [(host, port), ...], each once, in their order.

    Raises ValueError for the user; with several lines it names the line that is wrong.
    """
    lines = [
        (number, line.split("#", 1)[0].strip())
        for number, line in enumerate(text.splitlines(), start=1)
    ]
    lines = [(number, address) for number, address in lines if address]
    if not lines:
        parse_server_address("")  # says what to type
    servers = []
    for number, address in lines:
        try:
            servers.append(parse_server_address(address))
        except ValueError as exc:
            if len(lines) == 1:
                raise
            raise _refuse(
                translate("Validation", "Line {line}: {reason}").format(line=number, reason=exc)
            ) from None
    return list(dict.fromkeys(servers))


def server_address_text(host: str, port: int) -> str:
    """The canonical way to write an address: ``host:port``, ``[v6]:port``."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_rate(text: str, unit: int) -> int:
    """A speed limit typed as a number of ``unit`` (KB or MB) per second -> bytes per second.

    Blank or 0 means no limit (0). Both "1.5" and "1,5" are read as one and a half.
    """
    cleaned = text.strip().replace(" ", "")
    if not cleaned:
        return 0
    if cleaned.count(",") == 1 and "." not in cleaned:
        cleaned = cleaned.replace(",", ".")
    try:
        value = float(cleaned)
    except ValueError:
        raise _refuse(
            translate("Validation", "“{text}” is not a number.").format(text=text.strip())
        ) from None
    if math.isnan(value) or value < 0:
        raise _refuse(
            translate("Validation", "A speed limit cannot be negative (0 means no limit).")
        )
    rate = round(value * unit)
    if rate > MAX_RATE:
        raise _refuse(translate("Validation", "That speed limit is too high."))
    if value and rate < 1:
        raise _refuse(translate("Validation", "That speed limit is too low."))
    return rate


def rate_parts(rate: int) -> tuple[str, int]:
    """Bytes per second as the number and unit a person would type: ("10", MB), ("500", KB).

    No limit is ("", MB).
    """
    if rate <= 0:
        return "", MB
    unit = MB if rate >= MB else KB
    value = rate / unit
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return text.replace(".", QLocale().decimalPoint()), unit
