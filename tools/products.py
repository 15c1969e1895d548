"""The product catalogue a user hands in: CSV, XLSX or JSONL, read one row at a time.

    for item in read_products("products.csv"):
        if isinstance(item, RowError): print(item)        # "line 7 (sku A-7): no name; row skipped"
        else: item.sku, item.name, item.category ...

Rows are streamed (the csv module; openpyxl in read-only mode; a .jsonl file line by line), so a 200,000-row
file is never loaded whole: what is kept is one set of the SKUs seen, to report duplicates. A row that is wrong
(no sku, no name, a duplicate SKU, a field that is not text) is yielded as a `RowError` naming its line, and the
rest run. What is wrong with the file itself (missing, unreadable, empty, no `sku` column) raises SettingsError.

File names and folders in the output come from `sku_slug`, never from SKU text.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError, field_validator

from tools.errors import SettingsError
from tools.text_safety import clean_model_text

__all__ = ["Product", "RowError", "read_products", "sku_slug"]

REQUIRED = ("sku", "name", "category")
LIMITS = {"sku": 100, "name": 200, "category": 60, "color": 80, "material": 80, "price": 40, "promo": 80}
LIST_SPLIT = re.compile(r"[|;,，；、]")  # claims, scenes, platforms: "a|b", "a; b", "a，b"
SCENE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")


class Product(BaseModel):
    """One row of the catalogue: what the product is, and what the user asked for it."""

    sku: str = Field(description="The product's stock-keeping unit, unique in the catalogue.")
    name: str = Field(description="The product's name, Chinese or English.")
    category: str = Field(description="electronics, fashion, home, beauty, or any other (default scenes).")
    color: str = ""
    material: str = ""
    price: str | None = Field(default=None, description="As written: 199, ¥199, $129.00.")
    promo: str | None = Field(default=None, description="A promotion badge, e.g. 限时特惠.")
    claims: list[str] = Field(default_factory=list, description="Short claims, e.g. 40-hour battery.")
    image: str | None = Field(default=None, description="Product photo on white, relative to --images.")
    scenes: list[str] = Field(default_factory=list, description="This row's scenes; empty: the run's.")
    platforms: list[str] = Field(default_factory=list, description="This row's platforms; empty: the run's.")
    line: int = Field(default=0, description="Line (or sheet row) of the catalogue file it came from.")

    @field_validator("sku", "name", "category", "color", "material", "price", "promo", mode="before")
    @classmethod
    def _one_line(cls, value: Any, info) -> Any:
        if value is None:  # an empty spreadsheet cell or a JSON null
            return None if info.field_name in ("price", "promo") else ""
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # a spreadsheet's 199.0 is the price 199
        if not isinstance(value, str | int | float):
            raise ValueError(f"must be text, not {type(value).__name__}")
        text = clean_model_text(str(value), LIMITS[info.field_name])
        return text or None if info.field_name in ("price", "promo") else text

    @field_validator("sku", "name", "category")
    @classmethod
    def _present(cls, value: str) -> str:
        if not value:
            raise ValueError("is empty")
        return value

    @field_validator("category")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.casefold().replace(" ", "_")

    @field_validator("price")
    @classmethod
    def _has_number(cls, value: str | None) -> str | None:
        if value is not None and not re.search(r"\d", value):
            raise ValueError(f"{value!r} has no number in it")
        return value

    @field_validator("claims", "scenes", "platforms", mode="before")
    @classmethod
    def _split(cls, value: Any) -> list[str]:
        if value is None:
            return []
        items = value if isinstance(value, list) else LIST_SPLIT.split(str(value))
        return [clean_model_text(str(v), 80) for v in items if str(v).strip()]

    @field_validator("scenes", "platforms")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        names = [v.casefold().replace(" ", "_") for v in value]
        bad = [n for n in names if not SCENE_NAME.match(n)]
        if bad:
            raise ValueError(f"{bad[0]!r} is not a name (letters, digits, _ or -)")
        return names

    @field_validator("image", mode="before")
    @classmethod
    def _image(cls, value: Any) -> str | None:
        text = str(value).strip() if value is not None else ""
        return text or None


class RowError(BaseModel):
    """A row that cannot be used: its line, its SKU when it has one, and what is wrong."""

    line: int
    sku: str | None = None
    message: str

    def __str__(self) -> str:
        which = f"line {self.line}" + (f" (sku {self.sku})" if self.sku else "")
        return f"{which}: {self.message}; row skipped"


def sku_slug(sku: str) -> str:
    """A folder name made from a SKU: lower-case ASCII letters, digits and '-', then a short hash of the SKU.

    The hash keeps two SKUs apart that fold to the same letters ("A/1" and "a-1", or two Chinese SKUs).
    """
    folded = unicodedata.normalize("NFKD", sku).encode("ascii", "ignore").decode().lower()
    stem = "-".join(re.findall(r"[a-z0-9]+", folded))[:32].strip("-") or "sku"
    return f"{stem}-{hashlib.sha256(sku.encode()).hexdigest()[:8]}"


def _row(fields: dict[str, Any], line: int) -> Product | RowError:
    clean = {str(k).strip().casefold(): v for k, v in fields.items() if k is not None}
    sku = clean.get("sku")
    sku_text = clean_model_text(str(sku), LIMITS["sku"]) if sku not in (None, "") else None
    missing = [k for k in REQUIRED if clean.get(k) in (None, "") or not str(clean[k]).strip()]
    if missing:
        return RowError(line=line, sku=sku_text, message=f"no {' and no '.join(missing)}")
    known = {k: v for k, v in clean.items() if k in Product.model_fields and k != "line"}
    try:
        return Product(**known, line=line)
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "row"
        return RowError(
            line=line, sku=sku_text, message=f"{field} {err['msg'].removeprefix('Value error, ')}"
        )


def _header_check(path: Path, header: list[str]) -> None:
    names = [str(h).strip().casefold() for h in header if h is not None]
    missing = [k for k in REQUIRED if k not in names]
    if missing:
        raise SettingsError(
            f"catalogue {path}: no {', '.join(missing)} column(s); the header row has: "
            f"{', '.join(names) or 'nothing'}. The columns sku, name and category are required."
        )


def _csv_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None:
            raise SettingsError(
                f"catalogue {path} is empty: write a header row (sku,name,category,...) and rows"
            )
        _header_check(path, list(reader.fieldnames))
        for row in reader:
            if not any((v or "").strip() for k, v in row.items() if k is not None and isinstance(v, str)):
                continue  # a blank line between rows
            yield reader.line_num, {k: v for k, v in row.items() if k is not None}


def _xlsx_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    import zipfile

    import openpyxl
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, OSError, ValueError) as e:
        raise SettingsError(
            f"catalogue {path} is not a readable .xlsx workbook ({type(e).__name__}: {e})"
        ) from None
    try:
        rows = book.worksheets[0].iter_rows(values_only=True)
        header = next(rows, None)
        if header is None:
            raise SettingsError(f"catalogue {path} is empty: its first sheet has no header row")
        _header_check(path, list(header))
        names = [str(h).strip() if h is not None else None for h in header]
        for n, values in enumerate(rows, start=2):
            if all(v is None or str(v).strip() == "" for v in values):
                continue
            yield n, {k: v for k, v in zip(names, values, strict=False) if k}
    finally:
        book.close()


def _jsonl_rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | RowError]]:
    with path.open(encoding="utf-8-sig") as f:
        for n, text in enumerate(f, start=1):
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as e:
                yield n, RowError(line=n, message=f"not valid JSON ({e.msg} at column {e.colno})")
                continue
            yield n, obj if isinstance(obj, dict) else RowError(line=n, message="not a JSON object")


READERS = {".csv": _csv_rows, ".xlsx": _xlsx_rows, ".jsonl": _jsonl_rows}


def read_products(path: str | Path) -> Iterator[Product | RowError]:
    """Each row of the catalogue at `path` as a Product, or a RowError saying what is wrong with it.

    Raises SettingsError for the file itself: missing, a folder, an unknown extension, not UTF-8, no header,
    no required column, or no rows at all.
    """
    path = Path(path)
    reader = READERS.get(path.suffix.casefold())
    if reader is None:
        raise SettingsError(
            f"catalogue {path}: use a .csv, .xlsx or .jsonl file, not {path.suffix or 'no extension'!r}"
        )
    if not path.exists():
        raise SettingsError(f"catalogue {path} not found")
    if not path.is_file():
        raise SettingsError(f"catalogue {path} is not a file")
    first_line: dict[str, int] = {}
    rows = 0
    try:
        for line, fields in reader(path):
            rows += 1
            item = fields if isinstance(fields, RowError) else _row(fields, line)
            if isinstance(item, Product):
                if item.sku in first_line:
                    item = RowError(
                        line=line,
                        sku=item.sku,
                        message=f"duplicate sku (first on line {first_line[item.sku]})",
                    )
                else:
                    first_line[item.sku] = line
            yield item
    except UnicodeDecodeError as e:
        raise SettingsError(
            f"catalogue {path} is not UTF-8 text (byte {e.start}); save it as UTF-8 CSV"
        ) from None
    except csv.Error as e:
        raise SettingsError(f"catalogue {path}: {e}") from None
    if rows == 0:
        raise SettingsError(f"catalogue {path} has a header but no product rows")
