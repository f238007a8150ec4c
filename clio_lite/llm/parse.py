"""Tolerant reading of a model's structured answer: JSON in code fences or among prose, and Clio's XML-ish tags.

Models wrap JSON in ```json fences, add a sentence before or after it, or close a tag twice; these functions take
what is there and raise :class:`ParseError` (with a short reason, never the answer itself) when nothing usable is.
"""

from __future__ import annotations

import json
import re
from typing import Any

_FENCE = re.compile(r"```(?:[a-zA-Z0-9_-]*)\s*\n?(.*?)```", re.DOTALL)


class ParseError(ValueError):
    """An answer with none of the structure asked for."""


def parse_json(text: str) -> Any:
    """The first JSON object or array in ``text``: inside a code fence, or the first balanced ``{...}``/``[...]``.

    Examples
    --------
    >>> parse_json('Sure! ```json\\n{"name": "Git help"}\\n``` Hope that helps.')
    {'name': 'Git help'}
    >>> parse_json('{"score": 4} and some trailing words')
    {'score': 4}
    """
    candidates = [match.group(1) for match in _FENCE.finditer(text)] + [text]
    decoder = json.JSONDecoder()
    for candidate in candidates:
        for start, char in enumerate(candidate):
            if char not in "{[":
                continue
            try:
                value, _ = decoder.raw_decode(candidate, start)
            except json.JSONDecodeError:
                continue
            return value
    raise ParseError("no JSON object or array in the answer")


def parse_tag(text: str, tag: str) -> str:
    """The text inside ``<tag>...</tag>`` (the last complete one), or after an unclosed ``<tag>`` to the end.

    Examples
    --------
    >>> parse_tag("<answer> 4 </answer>", "answer")
    '4'
    >>> parse_tag("thinking... <name>Git branching</name> <name>Merge conflicts</name>", "name")
    'Merge conflicts'
    >>> parse_tag("<summary>Help with resumes", "summary")
    'Help with resumes'
    """
    closed = re.findall(rf"<{tag}>(.*?)</{tag}>", text, flags=re.DOTALL | re.IGNORECASE)
    if closed:
        return closed[-1].strip()
    opened = re.split(rf"<{tag}>", text, flags=re.IGNORECASE)
    if len(opened) > 1 and opened[-1].strip():
        return re.sub(r"</?[a-zA-Z_]+>\s*$", "", opened[-1]).strip()
    raise ParseError(f"no <{tag}> tag in the answer")


def parse_fields(text: str, fields: tuple[str, ...]) -> dict[str, str]:
    """Named string fields from tags (``<name>..</name>``) or, failing that, from a JSON object.

    Examples
    --------
    >>> parse_fields("<name>Resume writing</name><description>Help with CVs.</description>", ("name", "description"))
    {'name': 'Resume writing', 'description': 'Help with CVs.'}
    >>> parse_fields('```json\\n{"name": "Resumes", "description": "CVs."}\\n```', ("name", "description"))
    {'name': 'Resumes', 'description': 'CVs.'}
    """
    try:
        return {name: parse_tag(text, name) for name in fields}
    except ParseError:
        pass
    try:
        value = parse_json(text)
    except ParseError:
        raise ParseError(f"neither tags nor JSON with the fields {', '.join(fields)}") from None
    if not isinstance(value, dict) or not all(isinstance(value.get(name), str) for name in fields):
        raise ParseError(f"JSON without string fields {', '.join(fields)}")
    return {name: value[name].strip() for name in fields}


def parse_score(text: str, low: int = 1, high: int = 5, tag: str = "answer") -> int:
    """An integer score in ``[low, high]``: from ``<tag>``, a JSON ``score``, or the first integer in the answer.

    Examples
    --------
    >>> parse_score("<answer>4</answer>"), parse_score('{"score": 2}'), parse_score("I'd say 3 out of 5.")
    (4, 2, 3)
    """
    for reader in (lambda: parse_tag(text, tag), lambda: str(parse_json(text).get("score"))):
        try:
            found = re.search(r"-?\d+", reader())
        except (ParseError, AttributeError):
            continue
        if found:
            break
    else:
        found = re.search(r"-?\d+", text)
    if found is None:
        raise ParseError("no score in the answer")
    score = int(found.group())
    if not low <= score <= high:
        raise ParseError(f"score {score} outside {low}..{high}")
    return score
