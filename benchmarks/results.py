"""Benchmark results as JSON: each benchmark writes ``docs/benchmarks/<name>.json`` (tables, notes, the
machine), and the docs render their tables from those files (``scripts/mkdocs_hooks.py``), so no figure
is copied by hand. Printing stays as it was: a result is printed when it is added."""

from __future__ import annotations

import datetime
import json
import os
import platform
import sys
from pathlib import Path

import torch

OUT = Path(__file__).resolve().parents[1] / "docs" / "benchmarks"


def machine(device: str | torch.device | None = None) -> dict:
    """The CPU's model name, the threads torch uses, torch's version and, for a CUDA run, the GPU's name."""
    from sftgan_lit.inference.engines import cpu_name

    device = torch.device(device) if device is not None else None
    gpu = torch.cuda.get_device_name(device) if device is not None and device.type == "cuda" else None
    return {
        "cpu": f"{cpu_name()} ({os.cpu_count()} cores)",
        "device": gpu,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


class Results:
    """One benchmark run's tables and notes, saved as ``docs/benchmarks/<name>.json`` by ``save``."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.tables: list[dict] = []
        self.notes: list[str] = []

    def table(self, columns: list[str], caption: str = "") -> list[list]:
        """A new table; append rows (lists of cells, already formatted) to the list it returns."""
        rows: list[list] = []
        self.tables.append({"caption": caption, "columns": list(columns), "rows": rows})
        return rows

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(text)

    def save(self, device: str | torch.device | None = None, suffix: str = "") -> Path:
        """Write the JSON (``<name><suffix>.json``: a GPU run keeps its own file) and print the tables."""
        OUT.mkdir(parents=True, exist_ok=True)
        path = OUT / f"{self.name}{suffix}.json"
        data = {
            "benchmark": self.name,
            "command": " ".join(["python", f"benchmarks/{Path(sys.argv[0]).name}", *sys.argv[1:]]),
            "date": datetime.date.today().isoformat(),
            "machine": machine(device),
            "tables": self.tables,
            "notes": self.notes,
        }
        path.write_text(json.dumps(data, indent=1) + "\n")
        for table in self.tables:
            print(("\n" + table["caption"]) if table["caption"] else "")
            print(" | ".join(table["columns"]))
            for row in table["rows"]:
                print(" | ".join(str(c) for c in row))
        print(f"\nwritten {path}")
        return path
