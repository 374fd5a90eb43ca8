"""What every LLM step shares: the model, its sampling, its price and how requests are sent
(the endpoint part is tasks/llm/client.py's ClientConfig). No secrets in here."""

from __future__ import annotations

from pydantic import Field

from tasks.llm.client import ClientConfig


class LLMConfig(ClientConfig):
    """The model and how to sample it, for the teacher, synthesis and the judge alike."""

    model: str = Field("gpt-4o-mini", description="model name as the endpoint knows it")
    temperature: float = Field(0.0, ge=0, le=2, description="sampling temperature")
    top_p: float | None = Field(None, gt=0, le=1, description="nucleus sampling; empty: "
                                "the endpoint's default")
    structured_output: bool = Field(True, description="the judge and synthesis ask for a "
                                    "JSON schema (response_format); endpoints that refuse it "
                                    "get the plain request, and the answer is parsed from "
                                    "text either way")
    batch: bool = Field(False, description="OpenAI Batch API instead of online requests "
                        "(teacher only)")
    batch_poll_s: float = Field(30.0, gt=0, le=3600, description="Batch API status poll")
    price_in_per_mtok: float | None = Field(None, ge=0, description="USD per 1M input "
                                            "tokens (overrides the price table)")
    price_out_per_mtok: float | None = Field(None, ge=0, description="USD per 1M output "
                                             "tokens (overrides the price table)")
