"""Asking LLMs, written once for the teacher, synthesis and the judge.

step.py    LLMStep: prompt(item) / parse(item, text) -> a stage with caching, cost, rejections
core.py    templates, content-keyed requests, the cache protocol, the sending loop
client.py  the OpenAI-compatible client (retries, key scrubbing, rate caps)
limiter.py the adaptive concurrency limit
batch.py   the OpenAI Batch API sender
engine.py  a local llama.cpp engine (xllamacpp)
config.py  LLMConfig, shared by every step
"""
