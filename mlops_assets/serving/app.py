"""The online model server: the champion's predictions over HTTP (`predict_proba` of a binary or
multiclass model, `predict` of a regression), requests checked against the contract before the
model sees them.

MLflow's scoring server accepts any value its schema can convert: an age of 500, an income of -1
or an unknown level got a prediction, a 10 MB body a 500, and its 400s carried the server's stack
trace. This one answers the same requests (`dataframe_split`, `dataframe_records`, `instances`)
with the same `{"predictions": [[P(negative), P(positive)], ...]}` (a regression: `[value, ...]`;
a multiclass model: `[{class: probability, ...}, ...]`, named by the contract's classes), but:

- a value outside the contract (range, level, type, a missing required column) gets a 400 whose
  `reasons` name the row, column and rule;
- a body above `max_request_bytes` gets a 413 before it is read in full;
- no response carries a stack trace (the server's log has it, for a 500).

The model is loaded once at start-up through the registry, so its files are checked against the
digest recorded at training (`MlflowRegistry.load_model`).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlops_assets.contracts import DataContract
from mlops_assets.contracts.schema import CategoricalFeature, NumericFeature

if TYPE_CHECKING:
    import pandas as pd
    from starlette.applications import Starlette

MAX_REQUEST_BYTES = 1_000_000
MAX_REASONS = 20  # listed in a 400; the count of the rest follows
FORMATS = ("dataframe_split", "dataframe_records", "instances")

log = logging.getLogger("mlops_assets.serving")


class RequestError(Exception):
    """A request the contract refuses: `status` and what is wrong, row by row."""

    def __init__(self, message: str, reasons: list[str] | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.message, self.reasons, self.status = message, reasons or [], status

    def body(self) -> dict[str, Any]:
        shown = self.reasons[:MAX_REASONS]
        more = len(self.reasons) - len(shown)
        return {
            "error_code": "BAD_REQUEST" if self.status == 400 else "REQUEST_TOO_LARGE",
            "message": self.message,
            "reasons": shown + ([f"... and {more} more"] if more else []),
        }


def request_rows(payload: Any) -> list[dict[str, Any]]:
    """The rows of a request body in any accepted format, as one dict per row."""
    if not isinstance(payload, dict) or not any(key in payload for key in FORMATS):
        raise RequestError(f"The body must be a JSON object with one of: {', '.join(FORMATS)}")
    if "dataframe_split" in payload:
        split = payload["dataframe_split"]
        if not isinstance(split, dict) or not isinstance(split.get("columns"), list):
            raise RequestError("dataframe_split needs `columns` (a list) and `data` (rows)")
        columns, data = split["columns"], split.get("data")
        if not isinstance(data, list) or not all(isinstance(row, list) for row in data):
            raise RequestError("dataframe_split.data must be a list of rows (lists)")
        bad = [i for i, row in enumerate(data) if len(row) != len(columns)]
        if bad:
            raise RequestError(
                f"dataframe_split: rows must have {len(columns)} values, one per column",
                [f"row {i}: {len(data[i])} values" for i in bad],
            )
        return [dict(zip(columns, row, strict=True)) for row in data]
    key = "dataframe_records" if "dataframe_records" in payload else "instances"
    records = payload[key]
    if not isinstance(records, list) or not all(isinstance(row, dict) for row in records):
        raise RequestError(f"{key} must be a list of objects, one per row")
    return records


def validate_rows(rows: list[dict[str, Any]], contract: DataContract) -> pd.DataFrame:
    """The model's input frame, if every row satisfies the contract; else a `RequestError`."""
    import pandas as pd

    if not rows:
        raise RequestError("The request holds no rows")
    columns = contract.feature_columns
    present = set().union(*(row.keys() for row in rows))
    missing = [name for name in columns if name not in present]
    if missing:
        raise RequestError(f"Missing input column(s): {', '.join(missing)}")
    reasons: list[str] = []
    for index, row in enumerate(rows):
        for name in columns:
            problem = _problem(contract.column(name), row.get(name))
            if problem:
                reasons.append(f"row {index}: {name}: {problem}")
    if reasons:
        raise RequestError(
            f"{len(reasons)} value(s) outside the contract of {contract.name!r}", reasons
        )
    frame = pd.DataFrame.from_records(rows, columns=columns)
    for name in contract.numeric_features:
        frame[name] = pd.to_numeric(frame[name]).astype(float)
    return frame


def _problem(column: Any, value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None if column.nullable else "missing value"
    if isinstance(column, CategoricalFeature):
        text = str(value)
        if text not in column.levels:
            return f"{value!r} is not a level of the contract ({', '.join(column.levels)})"
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"{value!r} is not a number"
    if not math.isfinite(value):
        return f"{value!r} is not a finite number"
    if isinstance(column, NumericFeature):
        if column.type == "integer" and value != int(value):
            return f"{value!r} is not a whole number"
        if column.min is not None and value < column.min:
            return f"{value!r} is below the contract's minimum {column.min:g}"
        if column.max is not None and value > column.max:
            return f"{value!r} is above the contract's maximum {column.max:g}"
    return None


@dataclass
class ServedModel:
    """What the server answers with: the contract, the pipeline and where it came from."""

    contract: DataContract
    pipeline: Any
    version: str
    alias: str | None

    def predict(self, frame: pd.DataFrame) -> list[Any]:
        from mlops_assets.training.model import predict

        return self.contract.task.served(predict(self.pipeline, frame, self.contract))


def build_app(served: ServedModel, max_request_bytes: int = MAX_REQUEST_BYTES) -> Starlette:
    """The ASGI app: /ping, /health, /version and POST /invocations."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse
    from starlette.routing import Route

    async def ping(_request: Request) -> PlainTextResponse:
        return PlainTextResponse("\n")

    async def version(_request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "model": served.contract.model_name,
                "version": served.version,
                "alias": served.alias,
                "contract": served.contract.name,
                "contract_version": served.contract.version,
                "task": served.contract.task.name,
                "inputs": served.contract.feature_columns,
            }
        )

    async def invocations(request: Request) -> JSONResponse:
        try:
            body = await _read_limited(request, max_request_bytes)
            try:
                payload = json.loads(body)
            except ValueError as error:
                raise RequestError(f"The body is not valid JSON: {error}") from None
            frame = validate_rows(request_rows(payload), served.contract)
            return JSONResponse({"predictions": served.predict(frame)})
        except RequestError as error:
            return JSONResponse(error.body(), status_code=error.status)
        except Exception:
            log.exception("Prediction failed")
            return JSONResponse(
                {
                    "error_code": "INTERNAL_ERROR",
                    "message": "Prediction failed; see the server log",
                },
                status_code=500,
            )

    return Starlette(
        routes=[
            Route("/ping", ping, methods=["GET"]),
            Route("/health", ping, methods=["GET"]),
            Route("/version", version, methods=["GET"]),
            Route("/invocations", invocations, methods=["POST"]),
        ]
    )


async def _read_limited(request: Any, limit: int) -> bytes:
    """The body, refused with a 413 once it passes `limit` bytes (declared or streamed)."""
    declared = request.headers.get("content-length")
    too_large = f"The request body is larger than the server's limit of {limit:,} bytes"
    if declared and declared.isdigit() and int(declared) > limit:
        raise RequestError(too_large, status=413)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(too_large, status=413)
        chunks.append(chunk)
    return b"".join(chunks)
