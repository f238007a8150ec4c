"""Phrases users typed: the terms and phrases the keyword namer may put in a release, found in the scrubbed texts.

A *term* is a run of one or two content words typed next to each other (:func:`terms_of`); a *phrase* is a term
grown through articles, possessives and prepositions into what users wrote around it ("reset my password"), as
:class:`PhraseIndex` finds them. Neither crosses a scrubber placeholder or punctuation that ends a clause
(:func:`phrase_segments`). Which of them are k-supported in a node, and which name it, is :mod:`clio_lite.name`'s
business.
"""

from __future__ import annotations

import functools
import re
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence

import numpy as np

# Words that carry no topic in chat: greetings, politeness, filler. Added to scikit-learn's English stop words.
CHAT_STOP_WORDS = frozenset(
    [
        "hi", "hello", "hey", "thanks", "thank", "please", "ok", "okay", "sure", "yes", "yeah", "really", "just",
        "like", "want", "need", "know", "think", "got", "help", "im", "ive", "don", "didn", "doesn", "isn", "wasn",
        "aren", "won", "ll", "ve", "re", "maybe", "actually", "thing", "things", "lot", "bit", "kind",
        "does", "did", "instead", "ahead",
    ]
)

_WORD = re.compile(r"\w+")
# Where a term or phrase ends: a placeholder, a line break, or punctuation that touches whitespace or an end of the
# text (", ", ". ", " - "); punctuation inside a word ("node.js", "e-mail") or ending one ("c++", "c#") does not.
_PHRASE_BREAK = re.compile(r"<[A-Z_]+>|\n|(?:^|(?<=\s))[^\w\s]+|[^\w\s+#]+(?=\s|$)")
# A word as written: letters and digits, with inner ".", "-", "+" or "#" ("node.js", "e-mail"), trailing "+"/"#"
# ("c++", "c#"); an apostrophe splits ("don't" is "don" and "t", as the auditor reads it). An underscore joins
# ("ROW_NUMBER" is one word, as the auditor reads it, and no content word: "row" alone was never typed there).
_SURFACE_WORD = re.compile(r"[^\W_]+(?:[.\-+#_][^\W_]+)*[+#]*")
# A word that can carry a topic: two or more characters, starting with a letter (the vectorizer's TOKEN_PATTERN).
_CONTENT_WORD = re.compile(r"[a-z][a-z0-9+#]+(?:[.\-][a-z0-9+#]+)*")
# The only words a phrase may hold besides content words: articles, possessives and prepositions ("reset my
# password", "money in the market"), not verbs or conjunctions that would make it a piece of a sentence.
GLUE_WORDS = frozenset(
    [
        "a", "an", "the", "my", "your", "our", "their", "his", "her", "its", "this", "these", "that", "those", "to",
        "of", "for", "in", "on", "at", "with", "from", "into", "between", "about", "by", "per", "without", "after",
        "before", "during", "over", "under", "vs", "versus",
    ]
)
#: Longest phrase, in words, that a term grows into for a title or a description.
MAX_PHRASE_WORDS = 4
#: A term grows into a longer phrase only if at least this share of the term's users in the node typed that phrase.
PHRASE_SHARE = 0.5


@functools.cache
def stop_words() -> frozenset[str]:
    """scikit-learn's English stop words and :data:`CHAT_STOP_WORDS`: words that never start or end a term."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return frozenset(ENGLISH_STOP_WORDS | CHAT_STOP_WORDS)


def phrase_segments(text: str) -> Iterator[list[str]]:
    """The runs of words, as written, that a phrase may come from: cut at placeholders and clause punctuation.

    Examples
    --------
    >>> list(phrase_segments("Hi, I'm <PERSON>. Reset my password"))
    [['Hi'], ['I', 'm'], ['Reset', 'my', 'password']]
    """
    for part in _PHRASE_BREAK.split(text):
        words = _SURFACE_WORD.findall(part)
        if words:
            yield words


def is_content_word(word: str) -> bool:
    """Whether a lower-case word can carry a topic: not a stop word, two or more characters, starts with a letter."""
    return word not in stop_words() and _CONTENT_WORD.fullmatch(word) is not None


def terms_of(text: str, ngram_range: tuple[int, int] = (1, 2)) -> list[str]:
    """A text's terms: runs of content words typed next to each other, lower case, of ``ngram_range`` lengths.

    Examples
    --------
    >>> terms_of("How do I reset my password? Password reset link expired")
    ['reset', 'password', 'password', 'reset', 'link', 'expired', 'password reset', 'reset link', 'link expired']
    """
    low, high = ngram_range
    runs: list[list[str]] = []
    for words in phrase_segments(text):
        run: list[str] = []
        for word in [*words, ""]:
            lower = word.lower()
            if lower and is_content_word(lower):
                run.append(lower)
            elif run:
                runs.append(run)
                run = []
    return [
        " ".join(run[start : start + n])
        for n in range(low, high + 1)
        for run in runs
        for start in range(len(run) - n + 1)
    ]


class PhraseIndex:
    """Where each wanted term occurs, grown on either side into the phrases users typed around it.

    A phrase starts and ends with a content word, stays inside one phrase segment (:func:`phrase_segments`) and has
    at most :data:`MAX_PHRASE_WORDS` words (or the term's own length). For each term and phrase, the conversations it
    occurs in; for each phrase, how it was written, to give it its most common casing.
    """

    def __init__(self, texts: Sequence[str], terms: set[str]):
        wanted: dict[str, list[tuple[str, ...]]] = defaultdict(list)
        for term in sorted(terms):
            words = tuple(term.split())
            wanted[words[0]].append(words)
        found: dict[tuple[str, ...], dict[tuple[str, ...], list[int]]] = defaultdict(lambda: defaultdict(list))
        self.casing: dict[tuple[str, ...], Counter[str]] = defaultdict(Counter)
        for doc, text in enumerate(texts):
            seen: set[tuple[tuple[str, ...], tuple[str, ...]]] = set()
            for words in phrase_segments(text):
                lowers = [word.lower() for word in words]
                for start, word in enumerate(lowers):
                    for term in wanted.get(word, ()):
                        end = start + len(term)
                        if tuple(lowers[start:end]) != term:
                            continue
                        for phrase, (left, right) in _grown(lowers, start, end):
                            if (term, phrase) not in seen:
                                seen.add((term, phrase))
                                found[term][phrase].append(doc)
                                self.casing[phrase][_as_written(words[left:right])] += 1
        # Most conversations first, so that a search for common phrases can stop early.
        self.docs: dict[tuple[str, ...], list[tuple[tuple[str, ...], np.ndarray]]] = {
            term: sorted(((phrase, np.array(docs)) for phrase, docs in by_phrase.items()),
                         key=lambda item: (-len(item[1]), item[0]))
            for term, by_phrase in found.items()
        }

    def phrase(
        self,
        term: str,
        in_node: np.ndarray,
        user_codes: np.ndarray,
        min_users: int,
        avoid: set[str] = frozenset(),
        allowed: set[str] | None = None,
        free: set[str] = frozenset(),
    ) -> str:
        """``term`` grown into the longest phrase the node's users typed around it, as they most often wrote it.

        The phrase must be typed by at least ``min_users`` distinct users of the node (``in_node``, a mask over the
        conversations) and by at least :data:`PHRASE_SHARE` of the users who typed the term there. It repeats no
        word, holds no word but content words and :data:`GLUE_WORDS` (so no "and", the templates' connective), is
        no run of three or more content words (a list, not a phrase), adds no word of ``avoid`` (the parent's title
        words), no content word outside ``free`` (the node's keywords' words) and, given ``allowed``, none outside
        it either (the node's distinctive words: a phrase does not grow into what its siblings say as much).
        Without such a phrase, the term itself.
        """
        words = tuple(term.split())
        options = self.docs.get(words, [])
        users_of_term = next((len(np.unique(user_codes[docs[in_node[docs]]])) for phrase, docs in options
                              if phrase == words), 0)
        needed = max(min_users, PHRASE_SHARE * users_of_term)
        best, best_rank = words, (len(words), users_of_term)
        for phrase, docs in options:
            if len(docs) < needed:
                break
            added = set(phrase) - set(words)
            if (
                len(phrase) < best_rank[0]
                or len(set(phrase)) < len(phrase)
                or any(not is_content_word(word) and word not in GLUE_WORDS for word in phrase)
                or (len(phrase) > 2 and all(is_content_word(word) for word in phrase))  # a list, not a phrase
                or any(is_content_word(word) and word not in free for word in added)
                or added & avoid
                or (allowed is not None and any(is_content_word(w) and w not in allowed for w in added))
            ):
                continue
            users = len(np.unique(user_codes[docs[in_node[docs]]]))
            if users >= needed and (len(phrase), users) > best_rank:
                best, best_rank = phrase, (len(phrase), users)
        written = self.casing.get(best)
        if not written:
            return term
        return max(written.items(), key=lambda item: (item[1], item[0]))[0]


def _as_written(words: Sequence[str]) -> str:
    """A phrase as written, with capitalised words lowered ("World War" -> "world war"): acronyms ("SQL") and
    inner capitals ("DataFrame") stay, but no title shows two capitalised words in a row, the look of a full name
    that the auditor's PII check treats as an error."""
    return " ".join(word.lower() if word[:1].isupper() and word[1:].islower() else word for word in words)


def _grown(lowers: list[str], start: int, end: int) -> Iterator[tuple[tuple[str, ...], tuple[int, int]]]:
    """The phrases around ``lowers[start:end]``: :data:`MAX_PHRASE_WORDS` words at most, content words at both ends."""
    longest = max(MAX_PHRASE_WORDS, end - start)
    for left in range(max(0, end - longest), start + 1):
        if left < start and not is_content_word(lowers[left]):
            continue
        for right in range(end, min(len(lowers), left + longest) + 1):
            if right - left > longest or (right > end and not is_content_word(lowers[right - 1])):
                continue
            yield tuple(lowers[left:right]), (left, right)


def content_words(phrase: str) -> set[str]:
    """The lower-case content words of a phrase (:func:`is_content_word`)."""
    return {word for word in _WORD.findall(phrase.lower()) if is_content_word(word)}
