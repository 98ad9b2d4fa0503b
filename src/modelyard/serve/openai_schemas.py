"""Request bodies of the OpenAI-compatible routes (`/v1/chat/completions`, `/v1/completions`).

Fields modelyard does not implement are accepted only at their neutral value (for example
`frequency_penalty: 0`), so a client that relies on one gets a clear 400 instead of a
silently different answer.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_N = 8
MAX_STOPS = 4


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StreamOptions(_Body):
    """Options of a streamed answer."""

    include_usage: bool = Field(False, description="Send a last chunk with the token counts.")


class _Sampling(_Body):
    model: str | None = Field(
        None, description="Model name; optional when one generation model is served."
    )
    max_tokens: int | None = Field(
        None,
        ge=1,
        description="Most tokens to generate; default and cap: the server's max_new_tokens.",
    )
    temperature: float = Field(1.0, ge=0, le=2, description="0: greedy; higher: more random.")
    top_p: float = Field(
        1.0, gt=0, le=1, description="Nucleus sampling: the probability mass kept."
    )
    n: int = Field(1, ge=1, le=MAX_N, description="Answers to generate for each prompt.")
    stop: str | list[str] | None = Field(
        None, description=f"Up to {MAX_STOPS} sequences that end the answer (not included in it)."
    )
    seed: int | None = Field(None, description="Same seed, prompt and settings: same answer.")
    stream: bool = Field(
        False, description="Send the answer as server-sent events as it is generated."
    )
    stream_options: StreamOptions | None = None
    user: str | None = Field(None, description="Accepted and ignored.")
    presence_penalty: Literal[0] | None = Field(None, description="Only 0 (not implemented).")
    frequency_penalty: Literal[0] | None = Field(None, description="Only 0 (not implemented).")
    logit_bias: dict[str, float] | None = Field(None, description="Only empty (not implemented).")

    @field_validator("stop")
    @classmethod
    def _few_stops(cls, stop: str | list[str] | None) -> str | list[str] | None:
        if isinstance(stop, list) and len(stop) > MAX_STOPS:
            raise ValueError(f"at most {MAX_STOPS} stop sequences, got {len(stop)}")
        return stop

    @field_validator("logit_bias")
    @classmethod
    def _no_bias(cls, bias: dict[str, float] | None) -> dict[str, float] | None:
        if bias:
            raise ValueError("logit_bias is not supported; leave it out")
        return bias

    def stops(self) -> tuple[str, ...]:
        """Return the stop sequences as a tuple (empty strings dropped)."""
        items = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        return tuple(s for s in items if s)

    def requested_tokens(self) -> int | None:
        """Return the token budget the request asks for, or None for the server's default."""
        return self.max_tokens

    @property
    def include_usage(self) -> bool:
        """Return True when a streamed answer ends with a usage chunk."""
        return bool(self.stream_options and self.stream_options.include_usage)


class TextPart(_Body):
    """A text part of a message's content."""

    type: Literal["text"]
    text: str


class ChatMessage(_Body):
    """One message of a conversation."""

    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart] = Field(description="Text, or a list of text parts.")
    name: str | None = Field(None, description="Accepted and ignored.")

    def text(self) -> str:
        """Return the content as one string."""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class ChatCompletionRequest(_Sampling):
    """`POST /v1/chat/completions`: the conversation so far and how to answer."""

    messages: list[ChatMessage] = Field(min_length=1, description="The conversation so far.")
    max_completion_tokens: int | None = Field(None, ge=1, description="Same as max_tokens.")
    logprobs: Literal[False] | None = Field(None, description="Only false (not implemented).")

    def requested_tokens(self) -> int | None:
        """Return max_completion_tokens, else max_tokens, else None."""
        return self.max_completion_tokens or self.max_tokens

    def conversation(self) -> list[dict[str, str]]:
        """Return the messages as role/content dicts (a developer message counts as system)."""
        return [
            {"role": "system" if m.role == "developer" else m.role, "content": m.text()}
            for m in self.messages
        ]


class CompletionRequest(_Sampling):
    """`POST /v1/completions`: plain-text prompts to continue."""

    prompt: str | list[str] = Field(description="A prompt, or a list of prompts.")
    echo: Literal[False] | None = Field(None, description="Only false (not implemented).")
    logprobs: None = Field(None, description="Only null (not implemented).")
    best_of: Literal[1] | None = Field(None, description="Only 1 (not implemented).")
    suffix: None = Field(None, description="Only null (not implemented).")

    def prompts(self) -> list[str]:
        """Return the prompts as a list."""
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    """Return the OpenAI `usage` object."""
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
