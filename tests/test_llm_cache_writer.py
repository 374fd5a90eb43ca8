"""The single writer that stores LLM responses as they arrive (warehouse/llm.py)."""

from __future__ import annotations

import time

from tasks.llm.client import LLMCall
from warehouse.llm import LLMStore


def _call(i: int) -> LLMCall:
    return LLMCall(key=f"k{i}", run_id="r", model="m", purpose="teacher",
                   request={"i": i}, response={"choices": [{"message": {"content": str(i)}}]})


def test_every_response_is_committed_even_when_the_last_ones_arrive_with_the_stop(
        warehouse_path):
    store = LLMStore(warehouse_path)
    with store.writer(hold_s=0.2, idle_s=0.05) as put:
        put(_call(0))
        time.sleep(0.5)  # the writer goes idle and closes the file
        for i in range(1, 200):  # then a burst that lands together with the stop signal
            put(_call(i))
    cached = store.get_cached([f"k{i}" for i in range(200)])
    assert len(cached) == 200
    assert cached["k199"]["choices"][0]["message"]["content"] == "199"


def test_a_steady_stream_across_several_holds_loses_nothing(warehouse_path):
    store = LLMStore(warehouse_path)
    with store.writer(hold_s=0.1, idle_s=0.5) as put:
        for i in range(60):
            put(_call(i))
            time.sleep(0.01)
    assert len(store.get_cached([f"k{i}" for i in range(60)])) == 60
