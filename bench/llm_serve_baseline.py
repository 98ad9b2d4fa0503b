"""The naive generation server a user would write: FastAPI calling `generate` per request.

    python bench/llm_serve_baseline.py RUN_DIR PORT THREADS

A plain `def` endpoint (FastAPI runs it in its thread pool, so concurrent requests call
`generate` concurrently), the run's chat template, greedy decoding, no streaming. It speaks
just enough of `/v1/chat/completions` for the benchmark's load generator.
"""

from __future__ import annotations

import sys
from typing import Any

import torch
import uvicorn
from fastapi import FastAPI

from modelyard.generation.artifacts import load_lm_run


def build(run_dir: str) -> FastAPI:
    """Return the app serving the run at `run_dir`."""
    loaded = load_lm_run(run_dir)
    model, tokenizer = loaded.model, loaded.tokenizer
    app = FastAPI()

    @app.post("/v1/chat/completions")
    def chat(body: dict[str, Any]) -> dict[str, Any]:
        text = tokenizer.apply_chat_template(
            body["messages"], add_generation_prompt=True, tokenize=False
        )
        ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)
        with torch.inference_mode():
            out = model.generate(
                **ids,
                max_new_tokens=body.get("max_tokens", 32),
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
            )
        # counted as modelyard counts them: every generated token, the end-of-turn one included
        new = out[0, ids["input_ids"].shape[1] :].tolist()
        return {
            "choices": [{"message": {"content": tokenizer.decode(new, skip_special_tokens=True)}}],
            "usage": {"completion_tokens": len(new)},
        }

    @app.get("/health")
    def health() -> dict[str, bool]:
        return {"ok": True}

    return app


if __name__ == "__main__":
    torch.set_num_threads(int(sys.argv[3]))
    uvicorn.run(build(sys.argv[1]), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
