"""What a dry run would do: each transfer as it is planned, then the totals.

A dry run changes nothing anywhere; what it shows must be what the real run
would do, so the bulk helpers hand it the same jobs they would run. The plan
streams (a listing of millions is never held): lines as they come, or, for
``--json``, one JSON document written piece by piece.
"""

from __future__ import annotations

import json
import sys
import unicodedata
from typing import Any, TextIO

from ._progress import human_bytes

__all__ = ["Plan", "printable"]

#: Characters shown escaped, by Unicode category. Controls (Cc: C0, C1, DEL):
#: a key, a file name or a server's message may hold them, and a terminal would
#: obey them (an escape sequence, CSI as \x9b), or a newline would forge a line
#: of its own ("would download s3://b/x to /etc/passwd"). Format characters
#: (Cf: the bidi controls U+202A-U+202E, U+2066-U+2069, U+200E, U+200F, U+061C;
#: zero-width spaces and joiners, U+FEFF) reorder or hide text ("report\u202egpj.exe"
#: reads "reportexe.jpg"). Line and paragraph separators (Zl, Zp) break a line
#: in some terminals and viewers.
_HIDDEN = frozenset({"Cc", "Cf", "Zl", "Zp"})


def printable(text: str) -> str:
    """``text`` for a line of human output: each control, format or line
    separator character shown as its Python escape (``\\n``, ``\\x1b``,
    ``\\u202e``), the rest as it is (``é``, ``日本`` stay readable)."""
    if text.isprintable():
        # Nearly every name: str.isprintable is False for each character we
        # escape (and a few we keep: a tab is Cc, a no-break space is not).
        return text
    return "".join(
        repr(c)[1:-1] if unicodedata.category(c) in _HIDDEN else c for c in text
    )


class Plan:
    """Where a dry run reports what it would do, and how much.

    Each planned transfer is written to ``out`` (standard output by default)
    as it is found: a line such as ``would upload a.txt to s3://b/a.txt``, or
    with ``as_json=True`` an element of the ``"plan"`` list of one JSON
    document that :meth:`close` completes with the totals. ``objects`` and
    ``nbytes`` count what would move; ``unknown_sizes`` the transfers whose
    size is not known before they run (a manifest's downloads)."""

    def __init__(self, out: TextIO | None = None, *, as_json: bool = False) -> None:
        self.out = out
        self.as_json = as_json
        self.objects = 0
        self.nbytes = 0
        self.unknown_sizes = 0
        self.verbs: dict[str, int] = {}
        #: What a sync would delete (not counted in ``objects`` and ``nbytes``,
        #: which count what would move).
        self.deletions = 0
        self.deleted_bytes = 0
        self._opened = False
        self._header: dict[str, Any] | None = None
        self._begun = False  # part of the JSON document is out

    def add(self, verb: str, source: str, target: str, size: int | None) -> None:
        """``verb`` (upload, download, copy, ...) ``source`` to ``target``."""
        self.objects += 1
        self.verbs[verb] = self.verbs.get(verb, 0) + 1
        if size is None or size < 0:
            self.unknown_sizes += 1
        else:
            self.nbytes += size
        out = self.out or sys.stdout
        if not self.as_json:
            print(f"would {verb} {printable(source)} to {printable(target)}", file=out)
            return
        item = json.dumps({"op": verb, "source": source, "target": target, "size": size})
        self._start_json(out)
        out.write(f"{',' if self._opened else ''}\n    {item}")
        self._opened = True

    def delete(self, target: str, size: int) -> None:
        """``would delete target``: a sync's deletion (made only once every
        transfer succeeded), as a line or a ``{"op": "delete"}`` element."""
        self.deletions += 1
        self.deleted_bytes += max(size, 0)
        out = self.out or sys.stdout
        if not self.as_json:
            print(f"would delete {printable(target)}", file=out)
            return
        item = json.dumps({"op": "delete", "source": None, "target": target, "size": size})
        self._start_json(out)
        out.write(f"{',' if self._opened else ''}\n    {item}")
        self._opened = True

    def totals(self) -> str:
        """``would upload 2,003 objects, 249.7 MiB`` (sizes not known are said so)."""
        verb = next(iter(self.verbs)) if len(self.verbs) == 1 else "transfer"
        noun = "object" if self.objects == 1 else "objects"
        text = f"would {verb} {self.objects:,} {noun}, {human_bytes(self.nbytes)}"
        if self.unknown_sizes:
            text += f" (and {self.unknown_sizes:,} of unknown size)"
        return text

    def open_json(self, header: dict[str, Any]) -> None:
        """The JSON document's first fields. It is written with the first
        planned transfer (or :meth:`close_json`), so a run that fails before
        either leaves stdout empty, never half a document."""
        self._header = {**header, "dry_run": True}

    @property
    def json_begun(self) -> bool:
        """Whether part of the JSON document is out: then only :meth:`close_json`
        leaves stdout one document (a run stopped by an error too)."""
        return self._begun

    def _start_json(self, out: TextIO) -> None:
        if self._header is not None:
            fields = json.dumps(self._header, indent=2)[:-2]  # drop "\n}"
            self._begun = True  # even if the write fails part-way
            out.write(f"{fields},\n  \"plan\": [")
            self._header = None

    def close_json(self, totals: dict[str, Any]) -> None:
        """End the JSON document with the totals (and ``totals``' fields)."""
        out = self.out or sys.stdout
        self._start_json(out)
        tail = {"objects": self.objects, "bytes": self.nbytes,
                "unknown_sizes": self.unknown_sizes, **totals}
        body = json.dumps(tail, indent=2)[1:]  # drop "{"
        out.write(f"{chr(10) + '  ' if self._opened else ''}],{body}\n")
        out.flush()
