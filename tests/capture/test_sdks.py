"""The real openai and anthropic SDKs, building their own httpx clients, inside tl.capture():
recorded against the demo API's LLM endpoints on 127.0.0.1, replayed with the server stopped."""

from __future__ import annotations

import asyncio
import time

import anthropic
import openai
import pytest

import traffic_lab as tl
from traffic_lab.demo import DemoAPI
from traffic_lab.errors import UnmatchedRequestError

MESSAGES = [{"role": "user", "content": "Name three pioneers of computing"}]


def openai_calls(client: openai.OpenAI):
    completion = client.chat.completions.create(model="demo-model", messages=MESSAGES)
    stream = client.chat.completions.create(model="demo-model", messages=MESSAGES, stream=True)
    chunks = list(stream)
    return completion, chunks


def anthropic_calls(client: anthropic.Anthropic):
    message = client.messages.create(model="demo-model", max_tokens=64, messages=MESSAGES)
    with client.messages.stream(model="demo-model", max_tokens=64, messages=MESSAGES) as stream:
        events = list(stream)
        final = stream.get_final_message()
    return message, events, final


def test_openai_sdk_records_then_replays_offline(tmp_path):
    target = tmp_path / "openai"
    with DemoAPI() as api:
        # Built before the block, as a notebook would; the SDK builds its own httpx client.
        client = openai.OpenAI(base_url=api.url + "/v1", api_key="sk-test-123", max_retries=0)
        with tl.capture(target) as live:
            completion, chunks = openai_calls(client)
    assert live.recorded == 2
    with tl.capture(target, mode="none") as replay:
        completion2, chunks2 = openai_calls(client)
        # The SDK wraps what its transport raises; the miss is the cause.
        with pytest.raises(openai.APIConnectionError) as info:
            client.chat.completions.create(
                model="demo-model", messages=[{"role": "user", "content": "new"}]
            )
    assert isinstance(info.value.__cause__, UnmatchedRequestError)
    assert (replay.replayed, replay.missed) == (2, 1)
    assert completion2 == completion
    assert completion.choices[0].message.content.startswith("You asked 5 words;")
    assert chunks2 == chunks
    assert [c.choices[0].finish_reason for c in chunks][-1] == "stop"
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == completion.choices[0].message.content
    # The API key was redacted before storage.
    df = tl.read_capture(target)
    assert len(df) == 2
    assert "sk-test-123" not in str(tl.ParquetCache(target).exchanges().__next__().request_headers)


def test_async_openai_sdk(tmp_path):
    cache = tl.MemoryCache()

    async def calls(url):
        client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="sk-x", max_retries=0)
        async with client:
            completion = await client.chat.completions.create(model="m", messages=MESSAGES)
            stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
            chunks = [chunk async for chunk in stream]
        return completion, chunks

    with DemoAPI() as api:
        url = api.url
        with tl.capture(cache):
            live = asyncio.run(calls(url))
    with tl.capture(cache, mode="none") as replay:
        assert asyncio.run(calls(url)) == live
    assert replay.replayed == 2


def test_anthropic_sdk_records_then_replays_offline(tmp_path):
    target = tmp_path / "anthropic"
    with DemoAPI() as api:
        client = anthropic.Anthropic(base_url=api.url, api_key="sk-ant-test", max_retries=0)
        with tl.capture(target) as live:
            message, events, final = anthropic_calls(client)
    assert live.recorded == 2
    with tl.capture(target, mode="none") as replay:
        message2, events2, final2 = anthropic_calls(client)
    assert replay.replayed == 2
    assert message2 == message
    assert message.content[0].text.startswith("You asked 5 words;")
    assert [e.type for e in events2] == [e.type for e in events]
    assert events2 == events
    assert final2 == final
    assert final.content[0].text == message.content[0].text


def _timed_stream(client: openai.OpenAI) -> tuple[list, list[float]]:
    """The streamed completion's chunks, and when each arrived (s from the call)."""
    start = time.perf_counter()
    chunks, times = [], []
    stream = client.chat.completions.create(model="demo-model", messages=MESSAGES, stream=True)
    for chunk in stream:
        chunks.append(chunk)
        times.append(time.perf_counter() - start)
    return chunks, times


def test_openai_streamed_call_replays_at_the_recorded_pace(tmp_path):
    target = tmp_path / "paced"
    # slowness=8: the demo API sends an event every 40 ms.
    with DemoAPI(slowness=8) as api:
        client = openai.OpenAI(base_url=api.url + "/v1", api_key="sk-test", max_retries=0)
        with tl.capture(target):
            live, _ = _timed_stream(client)
    [recorded] = list(tl.ParquetStream(target).exchanges())
    assert recorded.chunks is not None and len(recorded.chunks) == len(live) + 1  # + [DONE]
    span = recorded.chunks[-1].offset_us / 1e6
    assert span >= 0.04 * len(live) * 0.8
    with tl.capture(target, mode="none", timing="recorded") as replay:
        paced, paced_times = _timed_stream(client)
    with tl.capture(target, mode="none") as at_once:
        fast, fast_times = _timed_stream(client)
    assert (replay.replayed, at_once.replayed) == (1, 1)
    assert paced == live and fast == live  # the same events in the same order
    assert paced_times == sorted(paced_times)
    assert 0.8 * span <= paced_times[-1] < 2 * span + 0.5, (paced_times, span)
    assert fast_times[-1] < 0.5 * span
