#!/usr/bin/python3
"""Renders chat templates as transformers' apply_chat_template does (the authority for chat.jsonl).

Reads a JSON list of jobs on stdin: {"template": str, "messages": [...], "add_generation_prompt": bool,
"vars": {bos_token, eos_token, ...}}; writes a JSON list of {"text": str} or {"error": str}.

Environment as in transformers (utils/chat_template_utils.py, _compile_jinja_template):
ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols]),
filter tojson = json.dumps(ensure_ascii=False, ...), globals raise_exception (raises TemplateError)
and strftime_now; render(messages=..., tools=None, documents=None, add_generation_prompt=...,
**special_tokens_map). Run with Debian's python3-jinja2 (apt-get install python3-jinja2).
"""
import json
import sys
from datetime import datetime

import jinja2
from jinja2.exceptions import TemplateError
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment


def raise_exception(message):
    raise TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def strftime_now(format):
    return datetime.now().strftime(format)


def main():
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    compiled = {}
    out = []
    for job in json.load(sys.stdin):
        t = job["template"]
        if t not in compiled:
            compiled[t] = env.from_string(t)
        try:
            text = compiled[t].render(messages=job["messages"], tools=None, documents=None,
                                      add_generation_prompt=job["add_generation_prompt"], **job["vars"])
            out.append({"text": text})
        except TemplateError as e:
            out.append({"error": str(e)})
    json.dump({"jinja2": jinja2.__version__, "results": out}, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
