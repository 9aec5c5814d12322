"""Talks to a running `peftc serve` with the official `openai` client (pinned in
requirements-openai.txt): lists models, then for each model named on the command line runs a
completion and a chat completion, each non-streaming and streaming, greedily. Prints one JSON
object with the texts; the Rust test (openai_client.rs) checks them.

usage: openai_client.py BASE_URL PROMPT MAX_TOKENS MODEL...
"""

import json
import sys

import openai


def main():
    base_url, prompt, max_tokens = sys.argv[1], sys.argv[2], int(sys.argv[3])
    models = sys.argv[4:]
    client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0)
    out = {"models": [m.id for m in client.models.list().data], "results": {}}
    for model in models:
        r = {}
        c = client.completions.create(
            model=model, prompt=prompt, max_tokens=max_tokens, temperature=0
        )
        r["completion"] = c.choices[0].text
        r["completion_finish"] = c.choices[0].finish_reason
        r["completion_tokens"] = c.usage.completion_tokens
        parts = []
        for chunk in client.completions.create(
            model=model, prompt=prompt, max_tokens=max_tokens, temperature=0, stream=True
        ):
            parts.append(chunk.choices[0].text)
        r["completion_stream"] = "".join(parts)
        messages = [{"role": "user", "content": prompt}]
        ch = client.chat.completions.create(
            model=model, messages=messages, max_tokens=max_tokens, temperature=0
        )
        r["chat"] = ch.choices[0].message.content
        r["chat_role"] = ch.choices[0].message.role
        parts = []
        for chunk in client.chat.completions.create(
            model=model, messages=messages, max_tokens=max_tokens, temperature=0, stream=True
        ):
            if chunk.choices and chunk.choices[0].delta.content:
                parts.append(chunk.choices[0].delta.content)
        r["chat_stream"] = "".join(parts)
        out["results"][model] = r
    try:
        client.completions.create(model="missing", prompt=prompt, max_tokens=2)
        out["missing"] = None
    except openai.NotFoundError as e:
        out["missing"] = e.status_code
    print(json.dumps(out))


if __name__ == "__main__":
    main()
