"""Talking to a service's metrics/health endpoint from a test."""

from __future__ import annotations

import re
import socket
import urllib.error
import urllib.request
from pathlib import Path

CATALOGUE = Path(__file__).parents[2] / "docs" / "metrics.md"


def free_port() -> int:
    """A TCP port nothing listens on now, on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def get(port: int, path: str) -> tuple[int, str]:
    """(status, body) of GET http://127.0.0.1:port/path; (0, why) while nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError as exc:
        return 0, repr(exc)


def catalogued_families(service: str) -> set[str]:
    """The metric families docs/metrics.md lists for `service` (`_total` dropped, as `# TYPE` names them).

    Rows of every service (`fluxforge_S_...`) count unless they name the services they apply to;
    the exchange-only collector metrics are left out (a simulator collector has none).
    """
    names = set()
    for line in CATALOGUE.read_text().splitlines():
        match = re.match(r"\| `fluxforge_(\w+?)` \|[^|]*\|[^|]*\| (.*)\|$", line)
        if match is None:
            continue
        name, meaning = match.groups()
        if name.startswith("S_"):
            only = re.match(r"([a-z_, ]+): ", meaning)
            if only is not None and service not in only.group(1).split(", "):
                continue
            name = f"{service}_{name[2:]}"
        elif not name.startswith(f"{service}_") or name.startswith("collector_exchange_"):
            continue
        names.add("fluxforge_" + name.removesuffix("_total"))
    return names


def families(text: str) -> set[str]:
    """Metric families of a Prometheus text page (its `# TYPE` lines; a counter's without `_total`)."""
    return {
        name.removesuffix("_total") if kind == "counter" else name
        for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M)
    }
