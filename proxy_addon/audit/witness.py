"""What this writer last wrote to its chain, kept on the proxy's own disk
(``<journal>/head``), so that a start never adopts a chain head it did not
write.

Whoever can write to the database can append rows after the last seal (with
correctly chained hashes) and move the chain head on; a writer that simply
continued from that head, and a sealer that sealed it, would vouch for the
made-up rows.  So before each commit the writer records the head it is
about to write (position and hash, fsynced), and at start it compares the
database's head with it:

* the same, or behind (a commit that failed after the record): adopted;
* ahead, or the same position with another hash: rows this writer never
  wrote.  The chain is *abandoned*: the writer starts a new one
  (``<chain>/2``, ...), records why in an ``audit:chain-refused`` row, and
  the sealer stops sealing the old one, so ``audit verify --key`` names the
  rows after its last seal.

The record names the chain in use and the abandoned ones, so a restart
continues the new chain.  Someone who can also write the proxy's disk can
change this file (see the threat model in docs/privacy.md): that is what the offline
verification key is for.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class Witness:
    chain: str
    seq: int = 0
    hash: str = ""
    abandoned: list[str] = field(default_factory=list)

    @classmethod
    def read(cls, path: Path, base: str) -> Witness | None:
        """The record for chain ``base`` (or a chain that replaced it), or None."""
        try:
            data = json.loads(path.read_text())
            w = cls(str(data["chain"]), int(data["seq"]), str(data["hash"]), [str(c) for c in data.get("abandoned", [])])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return w if w.chain == base or w.chain.startswith(base + "/") else None

    def write(self, path: Path) -> None:
        tmp = path.with_name(f".{path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps(asdict(self)))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    def vouches_for(self, seq: int, hash_: str) -> bool:
        """Whether a database head at ``seq``/``hash_`` is one this writer wrote (or fell short of)."""
        return seq < self.seq or (seq == self.seq and hash_ == self.hash)

    def successor(self) -> str:
        """The name of the chain that replaces this one."""
        base, _, n = self.chain.rpartition("/")
        if base and n.isdigit():
            return f"{base}/{int(n) + 1}"
        return f"{self.chain}/2"
