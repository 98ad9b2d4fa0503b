"""The baseline a user would write: FastAPI calling a transformers pipeline per request.

    python bench/serve_baseline.py --model RUN_DIR --port 8100

One uvicorn worker; a plain (sync) endpoint, so FastAPI runs each request in its thread
pool and calls the pipeline on that request's texts alone: no batching across requests,
no limits, no keys. Bound to 127.0.0.1.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel
from transformers import pipeline


class Texts(BaseModel):
    texts: list[str]


def build(model: Path, max_length: int) -> FastAPI:
    """Return the baseline app over the Hugging Face folder `model`."""
    classify = pipeline(
        "text-classification", model=str(model), tokenizer=str(model), device=-1, top_k=None
    )
    app = FastAPI()

    @app.get("/health")
    def health() -> dict[str, bool]:
        return {"ok": True}

    @app.post("/predict")
    def predict(body: Texts) -> list[Any]:
        return classify(body.texts, truncation=True, max_length=max_length)  # type: ignore[no-any-return]

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--max-length", type=int, default=64)
    args = parser.parse_args()
    uvicorn.run(
        build(args.model, args.max_length), host="127.0.0.1", port=args.port, log_level="warning"
    )


if __name__ == "__main__":
    main()
