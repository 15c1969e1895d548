"""tools/llm.py behind the real openai client, against a loopback server that acts as local servers do."""

from __future__ import annotations

import json
import re
import time

import pytest
from llm_server import ChatServer, Delay, Drip, Reply, Status
from PIL import Image
from pydantic import BaseModel, Field, ValidationInfo, field_validator

from tools.llm import (
    Chat,
    Endpoint,
    LLMError,
    clean_reply,
    is_echo,
    parse_json,
    rewrite,
    structured,
    vision_message,
)


class Shot(BaseModel):
    description: str


class Board(BaseModel):
    shots: list[Shot] = Field(description="The shots in order.")

    @field_validator("shots")
    @classmethod
    def _count(cls, shots: list[Shot], info: ValidationInfo) -> list[Shot]:
        want = (info.context or {}).get("shots")
        if want and len(shots) != want:
            raise ValueError(f"need exactly {want} shots, got {len(shots)}")
        return shots


def board(n: int) -> str:
    return json.dumps({"shots": [{"description": f"shot {i}"} for i in range(n)]})


MESSAGES = [{"role": "system", "content": "You plan films."}, {"role": "user", "content": "A mug ad."}]


def endpoint(server: ChatServer, **kw) -> Endpoint:
    return Endpoint(base_url=server.base_url, model="loop", **{"timeout": 5.0, "retries": 2, **kw})


@pytest.fixture
def server():
    with ChatServer() as s:
        yield s


def test_json_schema_refusal_steps_down_to_json_object_and_remembers(server):
    server.script([Status(400, "response_format type json_schema is not supported"), board(2)])
    chat = Chat(endpoint(server))
    answer = chat.structured(MESSAGES, Board, name="storyboard", context={"shots": 2})
    assert len(answer.value.shots) == 2
    assert answer.stats.mode == "json_object" and chat.mode == "json_object"
    first, second = server.requests
    assert first["response_format"]["type"] == "json_schema"
    assert first["response_format"]["json_schema"]["strict"] is True
    assert second["response_format"] == {"type": "json_object"}
    assert '"shots"' in second["messages"][0]["content"]  # the schema went into the system prompt
    assert second["messages"][0]["content"].startswith(
        "You plan films."
    )  # added to, not a second system message
    # The next call on this endpoint goes straight to json_object.
    chat.structured(MESSAGES, Board, name="storyboard")
    assert server.requests[2]["response_format"] == {"type": "json_object"}
    assert len(server.requests) == 3


def test_json_object_refusal_steps_down_to_fenced_text(server):
    server.script(
        [
            Status(400, "Unknown response_format json_schema"),
            Status(422, "response_format json_object: unsupported"),
            "Here it is:\n```json\n" + board(1) + "\n```\nHope this helps!",
        ]
    )
    chat = Chat(endpoint(server))
    answer = chat.structured(MESSAGES, Board, name="storyboard")
    assert answer.value.shots[0].description == "shot 0" and chat.mode == "text"
    last = server.requests[-1]
    assert "response_format" not in last and "```json" in last["messages"][0]["content"]


def test_other_400_is_not_a_format_refusal(server):
    server.script([Status(400, "maximum context length is 4096 tokens")])
    with pytest.raises(LLMError) as err:
        Chat(endpoint(server)).structured(MESSAGES, Board, name="storyboard")
    assert err.value.kind == "refused" and "HTTP 400" in str(err.value) and "context length" in str(err.value)
    assert len(server.requests) == 1


def test_answer_without_json_steps_down(server):
    server.script(["I would love to help with your mug ad!", board(1)])
    chat = Chat(endpoint(server, retries=0))
    answer = chat.structured(MESSAGES, Board, name="storyboard")
    assert chat.mode == "json_object" and answer.stats.calls == 2 and answer.value


def test_fenced_answers_and_prose_parse():
    assert parse_json('```json\n{"a": 1}\n```') == {"a": 1}
    assert parse_json('Sure! ```\n{"a": [1, 2]}\n``` done') == {"a": [1, 2]}
    assert parse_json('The plan is {"a": {"b": "}"}} as asked.') == {"a": {"b": "}"}}
    assert parse_json('```json\n{"a": 1}') == {"a": 1}  # an unclosed fence at the end of a cut answer
    with pytest.raises(ValueError, match="no JSON"):
        parse_json("no json here")


def test_short_shot_count_is_asked_again_with_the_problem(server):
    server.script(["```json\n" + board(3) + "\n```", board(4)])
    answer = Chat(endpoint(server)).structured(MESSAGES, Board, name="storyboard", context={"shots": 4})
    assert len(answer.value.shots) == 4 and answer.stats.calls == 2
    repair = server.requests[1]["messages"]
    assert repair[-2]["role"] == "assistant" and "shot 2" in repair[-2]["content"]
    assert "need exactly 4 shots, got 3" in repair[-1]["content"]
    assert answer.stats.problems == ["shots: Value error, need exactly 4 shots, got 3"]


def test_meaning_level_validate_callback(server):
    server.script([board(2), json.dumps({"shots": [{"description": "a"}, {"description": "b"}]})])

    def distinct(value: Board) -> list[str]:
        texts = [s.description[:5] for s in value.shots]
        return ["two shots have the same description"] if len(set(texts)) < len(texts) else []

    answer = Chat(endpoint(server)).structured(MESSAGES, Board, name="storyboard", validate=distinct)
    assert [s.description for s in answer.value.shots] == ["a", "b"]
    assert "same description" in server.requests[1]["messages"][-1]["content"]


def test_invalid_answers_bounded_and_named(server):
    server.script([board(1)])
    with pytest.raises(LLMError) as err:
        Chat(endpoint(server, retries=2)).structured(MESSAGES, Board, name="storyboard", context={"shots": 5})
    message = str(err.value)
    assert len(server.requests) == 3 and err.value.kind == "invalid"
    assert server.base_url in message and "'loop'" in message
    assert "answered 3 time(s)" in message and "need exactly 5 shots, got 1" in message
    assert "--llm-retries" in message and "did not answer" not in message


def test_slow_answer_needs_a_longer_timeout(server):
    server.script([Delay(1.5, board(1))])
    started = time.monotonic()
    with pytest.raises(LLMError) as err:
        Chat(endpoint(server, timeout=0.5)).structured(MESSAGES, Board, name="storyboard")
    assert time.monotonic() - started < 1.4
    assert err.value.kind == "timeout" and "--llm-timeout (CD_LLM_TIMEOUT)" in str(err.value)
    assert len(server.requests) == 1  # a timeout is not retried
    answer = Chat(endpoint(server, timeout=4)).structured(MESSAGES, Board, name="storyboard")
    assert answer.value and answer.stats.seconds >= 1.4


def test_dripping_server_is_stopped_at_the_deadline(server):
    # Headers at once, then a byte every 0.3 s: each read is quick, so only a total deadline stops it.
    server.script([Drip(0.3)])
    started = time.monotonic()
    with pytest.raises(LLMError) as err:
        Chat(endpoint(server, timeout=1.5)).structured(MESSAGES, Board, name="storyboard")
    elapsed = time.monotonic() - started
    assert 1.4 < elapsed < 2.2, elapsed
    assert err.value.kind == "timeout" and "timed out after 1.5 s total" in str(err.value)


def test_looping_answer_cut_at_length_gets_a_shorter_request(server):
    looping = '{"shots": [{"description": "a mug a mug a mug a mug a mug a mug'
    server.script([Reply(looping, finish_reason="length"), board(1)])
    answer = Chat(endpoint(server)).structured(MESSAGES, Board, name="storyboard", max_tokens=64)
    assert answer.value and answer.stats.calls == 2
    first, second = server.requests
    assert first["max_tokens"] == 64
    # Not the same request again: the cut-off answer is not resent, a shorter answer is asked for.
    assert second["messages"][: len(MESSAGES)] == first["messages"][: len(MESSAGES)]
    assert "shorter" in second["messages"][-1]["content"]
    assert all(looping not in str(m["content"]) for m in second["messages"])
    assert "cut off" in answer.stats.problems[0]


def test_echoing_rewrite_is_rejected_and_asked_again(server):
    request = "Shot: a mug on a table\nCamera: close-up\nProblems:\n- the director's note: make it rain"
    echo = "Shot: a mug on a table, rain\nCamera: close-up\nProblems: - the director's note: make it rain"
    server.script([echo, "Prompt: a ceramic mug on a wet table, rain streaking the window, close-up"])
    answer = Chat(endpoint(server)).rewrite(
        [{"role": "system", "content": "Rewrite the prompt."}, {"role": "user", "content": request}],
        request=request,
    )
    assert answer.text == "a ceramic mug on a wet table, rain streaking the window, close-up"
    assert "repeats the request" in server.requests[1]["messages"][-1]["content"]


def test_is_echo():
    request = "Shot: a mug\nCamera: close-up\nProblems:\n- the director's note: make it rain"
    assert is_echo("Shot: a mug in rain. Camera: close-up", request)
    assert not is_echo("a mug in the rain, close-up, soft light", request)
    assert not is_echo("anything", "just rewrite this prompt please")
    assert clean_reply('```\nPrompt: "a red fox"\n```') == "a red fox"


def test_500_then_success_within_retries(server):
    server.script([Status(500, "model is loading"), Status(503, "busy"), board(1)])
    answer = Chat(endpoint(server, retries=2)).structured(MESSAGES, Board, name="storyboard")
    assert answer.value and answer.stats.calls == 3
    assert answer.stats.prompt_tokens == 10 and answer.stats.completion_tokens == 5


def test_total_attempts_bounded_for_server_errors(server):
    server.script([Status(500, "boom")])
    started = time.monotonic()
    with pytest.raises(LLMError) as err:
        Chat(endpoint(server, retries=1)).text(MESSAGES)
    assert len(server.requests) == 2 and time.monotonic() - started < 3
    assert (
        err.value.kind == "status" and "HTTP 500" in str(err.value) and "failed 2 time(s)" in str(err.value)
    )


def test_refused_connection_names_the_endpoint():
    ep = Endpoint(base_url="http://127.0.0.1:1/v1", model="m", retries=0, timeout=2)
    with pytest.raises(LLMError) as err:
        structured(ep, MESSAGES, Board, name="storyboard")
    assert err.value.kind == "connect" and "http://127.0.0.1:1/v1" in str(err.value)
    assert "--llm-base-url (CD_LLM_BASE_URL)" in str(err.value)


def test_vlm_flags_in_advice(server):
    server.script([Status(404, "model not found")])
    with pytest.raises(LLMError) as err:
        Chat(endpoint(server), flags="vlm").text(MESSAGES)
    assert "--vlm-model (CD_VLM_MODEL)" in str(err.value) and err.value.kind == "not_found"


def test_placeholder_key_and_no_client_retries(server):
    server.script(["a red fox"])
    chat = Chat(endpoint(server))
    assert chat.client.max_retries == 0 and chat.client.api_key == "not-needed"
    assert rewrite(chat, MESSAGES, request="a fox").text == "a red fox"


def test_vision_message_carries_a_data_url(server):
    server.script(['{"shots": []}'])
    message = vision_message("Judge this.", Image.new("RGB", (2000, 1000), "red"))
    url = message["content"][1]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    Chat(endpoint(server)).structured([message], Board, name="verdict")
    assert server.requests[0]["messages"][0]["content"][1]["image_url"]["url"] == url


def test_a_server_refusing_max_length_gets_the_schema_without_it(server):
    schema = {
        "type": "object",
        "properties": {
            "shots": {"type": "array", "maxItems": 2, "items": {"type": "string", "maxLength": 9}}
        },
        "required": ["shots"],
        "additionalProperties": False,
    }
    server.script([Status(400, "Invalid schema for response_format: 'maxLength' is not permitted"), board(1)])
    chat = Chat(endpoint(server, retries=0))
    answer = chat.structured(MESSAGES, Board, name="storyboard", schema=schema)
    assert answer.value and chat.mode == "json_schema" and chat.string_limits is False
    first, second = (r["response_format"]["json_schema"]["schema"] for r in server.requests)
    assert first["properties"]["shots"]["items"]["maxLength"] == 9
    assert "maxLength" not in json.dumps(second) and second["properties"]["shots"]["maxItems"] == 2


def test_a_try_that_cannot_finish_in_the_time_left_is_not_sent(server):
    server.script([Delay(0.9, board(1)), board(3)])
    chat = Chat(endpoint(server, retries=2))
    with pytest.raises(LLMError) as err:
        chat.structured(
            MESSAGES, Board, name="storyboard", context={"shots": 3}, until=time.monotonic() + 1.5
        )
    assert err.value.kind == "budget" and len(server.requests) == 1
    assert re.search(r"the last answer took [\d.]+ s, [\d.]+ s were left", str(err.value))
