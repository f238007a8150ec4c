"""Rule-based recognizers that clio_lite adds to Presidio's, and the merging of overlapping detections.

Each rule is a plain function from a text to ``(start, end, score)`` triples, wrapped in a Presidio
``EntityRecognizer`` by :func:`build_recognizers`, so it can be tested and measured on its own. The rules prefer
over-scrubbing to leaking, but each one needs a cue that personal data is there: a format that topical text does not
have (``+44 20 7946 0958``, ``ghp_...``), or context ("my zip code is", "call me", "Address:"). What each adds is
measured on ``presidio_synth`` by ``benchmarks/scrub.py`` (see ``docs/scrubbing.md``).
"""

from __future__ import annotations

import functools
import math
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import regex

Found = Iterator[tuple[int, int, float]]


@dataclass(frozen=True)
class Span:
    """A detected entity: ``text[start:end]`` is of ``entity_type``."""

    start: int
    end: int
    entity_type: str
    score: float = 1.0


def merge_spans(text: str, spans: Iterable[Span]) -> list[Span]:
    """Overlapping spans as one span (typed by its longest part), trimmed of surrounding whitespace.

    Examples
    --------
    >>> merge_spans("at 12 Elm St now", [Span(3, 12, "STREET_ADDRESS", 0.6), Span(3, 5, "ZIP_CODE", 0.4)])
    [Span(start=3, end=12, entity_type='STREET_ADDRESS', score=0.6)]
    """
    merged: list[Span] = []
    for span in sorted(spans, key=lambda span: (span.start, -span.end)):
        start, end = span.start, span.end
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if start == end:
            continue
        span = Span(start, end, span.entity_type, span.score)
        if merged and start < merged[-1].end:
            last = merged[-1]
            best = last if (last.end - last.start, last.score) >= (end - start, span.score) else span
            merged[-1] = Span(last.start, max(last.end, end), best.entity_type, best.score)
        else:
            merged.append(span)
    return merged


# ---------------------------------------------------------------------------------------------------------------
# Street addresses

_STREET_TYPES = (
    r"street|st|avenue|ave|av|road|rd|boulevard|blvd|lane|ln|drive|dr|court|ct|place|pl|way|terrace|parkway|pkwy|"
    r"circle|cir|highway|hwy|square|sq|trail|crescent|close|row|mews|grove|walk|loop|alley|ridge|heights|bypass|"
    r"crossing|forks|route|rue|via|viale|calle|avenida|rua|corso|piazza|largo|strasse|straße|str|gasse|weg|platz|"
    r"allee|laan|straat|plein|vej|gade|gata|gatan|gate|vägen|väg|veien|vei|vegur|katu|tie|utca|u\.|ulica|ul|tér|út|trg|"
    r"stræde|flats|close|u"
)
_STREET_SUFFIXES = r"strasse|straße|straat|gasse|weg|vej|gade|gatan|vägen|veien|vegur|katu|tie|laan|utca|ulica|gata"
_WORD = r"\p{L}[\p{L}'’\-]*\.?"
_CAP_WORD = r"\p{Lu}[\p{L}'’\-]*\.?"
_UNIT = r"(?:apt|apartment|unit|suite|ste|flat|floor|fl|room|box|po\s+box|psc|bldg|building)\.?\s*#?\s*[\w\-]+"
_NUMBER = r"\d{1,6}[A-Za-z]?(?:[/\-]\d{1,4})?"
_CONTINENTAL_TYPES = r"rue|via|viale|calle|avenida|av|rua|corso|piazza|largo|strada|ul|trg|chemin|plaza|paseo|camino"
# Within an address words are separated by spaces only: tabs and line breaks separate cells and lines of tables.
_SP = r"(?:[ ]+|[ ]*\n[ ]*)"

#: House number, street name, street type ("42 Elm Street", "2407 tawastintie 6", "56 rue La Boétie").
_NUMBERED_STREET = regex.compile(
    rf"\b{_NUMBER}{_SP}(?:{_NUMBER}{_SP})?(?:(?:{_WORD}{_SP}){{0,3}}(?i:{_STREET_TYPES})\b\.?|"
    rf"(?:{_WORD}{_SP}){{0,2}}\p{{L}}+(?i:{_STREET_SUFFIXES})\b|"
    rf"(?:{_CAP_WORD}{_SP}){{1,3}}\d{{1,5}}[a-zA-Z]?\b)(?:{_SP}\d{{1,5}}[a-zA-Z]?\b)?"
)
#: House number, then a street type first, then the name ("56 rue La Boétie", "770 26 rue des lieutemants Thomazo").
_NUMBER_TYPE_NAME = regex.compile(
    rf"\b{_NUMBER}{_SP}(?:{_NUMBER}{_SP})?(?i:{_CONTINENTAL_TYPES}|avenue|boulevard|route|place)\b\.?"
    rf"(?:{_SP}{_WORD}){{1,4}}"
)
#: Street name then number, the continental order ("Hlíðarvegur 97", "Via Tasso 129", "ul. Jesionowa 127").
_NAMED_STREET = regex.compile(
    rf"\b(?:(?i:{_CONTINENTAL_TYPES})\.?{_SP}(?:{_WORD}{_SP}){{0,3}}|(?:{_WORD}{_SP}){{0,2}}\p{{L}}+"
    rf"(?i:{_STREET_SUFFIXES}){_SP})\d{{1,5}}[a-zA-Z]?\b"
)
#: House number, any words, number, unit: the lower-case and non-Latin forms ("0605 πεντέλης 210 apt. 999").
_NUMBERED_WITH_UNIT = regex.compile(rf"\b\d{{1,6}}{_SP}(?:{_WORD}{_SP}){{1,4}}\d{{1,5}}[a-z]?[ ]*,?[ ]*(?i:{_UNIT})")
#: Military and post-office addresses ("PSC 0729, Box 5797", "APO AP 96854", "Unit 5022 Box 1225").
_POSTAL = regex.compile(
    r"(?i)\b(?:(?:psc|unit|cmr)\s+\d{3,5},?\s+box\s+\d{3,5}|(?:apo|fpo|dpo)\s+(?:aa|ae|ap)\s+\d{5}|"
    r"p\.?\s?o\.?\s+box\s+\d{1,6}|(?:usns|uss|usnv|usc?gc)\s+\p{L}+\s+(?:apo|fpo|dpo)\s+(?:aa|ae|ap)\s+\d{5})\b"
)
#: What introduces an address; what follows (up to the end of the sentence) is the address when it has a digit.
_ADDRESS_CUE = regex.compile(
    r"(?i)\b(?:address(?:es)?(?:\s+(?:is|was|to|with))?|addr|(?:live|lives|lived|living|stay|staying|reside|resides)"
    r"\s+(?:at|on|in)|located\s+(?:at|on|in)|(?:meet|see)\s+(?:me|you|us)\s+at|off\s+at|(?:sent|send|ship|shipped|"
    r"deliver|delivered|return|returned|mail|mailed|forward|forwarded)\s+(?:it\s+|them\s+)?to|"
    r"arrived\s+at|(?:office|offices|house|home|flat|apartment|place|shop|store|restaurant|station|hotel|school|"
    r"studio|clinic)\s+(?:is|are|was)\s+(?:at|on|in)|corner\s+of|(?:it's|it\s+is)\s+(?:in|at|on))\b[:\s]*"
)
_SENTENCE_END = regex.compile(
    r"[?!\n]|(?<!\b\p{L}{1,4})\.(?:\s+\p{Lu}|\s*$)|\s+(?:in\s+case|last\s+night|for\s+(?:the|a|my|your)|by\s+\d|before|after|"
    r"tomorrow|today|tonight|please|thanks|because|so\s+that)\b|,\s+(?:my|and|but|or|so|please|thanks|because|which|"
    r"it|i|we|you)\b"
)
#: Numbers in an address cue's sentence that do not make it an address: times, dates, prices, percentages.
_NOT_ADDRESS_NUMBERS = regex.compile(
    r"\d{1,2}:\d{2}(?::\d{2})?|\d{4}[\-./]\d{1,2}[\-./]\d{1,2}|\d{1,2}[\-./]\d{1,2}[\-./]\d{2,4}|[$€£¥]\s?\d[\d,.]*|"
    r"\d[\d,.]*\s?(?:%|percent|dollars?|euros?|pounds?|am|pm|o'clock|minutes?|hours?|days?|weeks?|years?)\b"
)
#: A following line that continues an address block: a unit, a city in capitals, a country and postcode, a state.
_ADDRESS_LINE = regex.compile(
    rf"(?i:{_UNIT})|(?-i:[\p{{Lu}}\s\-'.]+)|"
    rf"(?:[\p{{L}}'\-.]+[ ,]+){{0,3}}(?:\d{{3,6}}(?:[ \-]\d{{2,4}})?|\d{{2}}-\d{{3}})|"
    r"[\p{L}\s\-'.]{2,30},?\s*\(?[\p{L}\s]*\)?\s*\d{3,6}|,?\s*\p{L}{2}|nan|[\p{L} ]{2,30},\s*\p{Lu}{2}(?:\s+\d{5})?|"
    r"\p{L}[\p{L}\-'.]*(?:\s+\p{L}[\p{L}\-'.]*){0,3}"
)
#: An address after a cue has a plain number (house, street or postcode) among its first six words.
_HOUSE_NUMBER = regex.compile(r"\s*(?:\S+\s+){0,5}\d{1,6}[a-zA-Z]?(?:[\s,.]|$)")
_LINE_PREFIX = regex.compile(r"[\s>?]*")


def find_street_addresses(text: str) -> Found:
    """Street addresses: numbered and continental street forms, postal boxes, and what follows an address cue.

    A match that ends a line takes the following address-like lines with it (unit, city, country and postcode).
    """
    found: list[tuple[int, int, float]] = []
    for pattern, score in ((_NUMBERED_STREET, 0.6), (_NAMED_STREET, 0.45), (_POSTAL, 0.7), (_NUMBERED_WITH_UNIT, 0.5),
                           (_NUMBER_TYPE_NAME, 0.5)):
        for match in pattern.finditer(text):
            found.append((match.start(), _extend_block(text, _extend_unit(text, match.end())), score))
    for cue in _ADDRESS_CUE.finditer(text):
        start = cue.end()
        end_match = _SENTENCE_END.search(text, start)
        end = end_match.start() if end_match else len(text)
        candidate = text[start:end]
        numbers = _HOUSE_NUMBER.match(_NOT_ADDRESS_NUMBERS.sub(" ", candidate))
        if 3 <= len(candidate) <= 120 and (numbers or "corner" in cue.group().lower()):
            found.append((start, _extend_block(text, end), 0.5))
    yield from found


_CITY_TAIL = regex.compile(
    r"(?:\s*,\s*(?!(?i:my|and|but|or|so|please|thanks|because|which|it|i|we|you|the|a|an|then)\b)"
    r"[\p{L}'\-.]+(?:\s+[\p{L}'\-.()]+){0,3}){1,3}(?:\s+\d{3,6}(?:-\d{3,4})?)?"
)


def _extend_unit(text: str, end: int) -> int:
    """Extend past units and a city that follow on the same line ("Apt. 864", ", Springfield")."""
    unit = regex.compile(rf"(?:\s*,?\s*(?i:{_UNIT}))+")
    match = unit.match(text, end)
    if match:
        end = match.end()
    match = _CITY_TAIL.match(text, end)
    return match.end() if match else end


def _extend_block(text: str, end: int) -> int:
    """Extend an address that ends its line over the following lines that continue the address."""
    while True:
        rest = text[end:]
        stripped = rest.lstrip(" \t,.")
        if not stripped.startswith("\n"):
            return end
        line_start = end + (len(rest) - len(stripped)) + 1
        prefix = _LINE_PREFIX.match(text, line_start).end()
        line_end = text.find("\n", prefix)
        line_end = len(text) if line_end < 0 else line_end
        line = text[prefix:line_end].rstrip()
        if not line or len(line) > 50 or not _ADDRESS_LINE.fullmatch(line):
            return end
        end = prefix + len(line)


# ---------------------------------------------------------------------------------------------------------------
# Phone numbers, postcodes, card and ID numbers

_PHONE = regex.compile(
    r"(?<![\w.\-/+])(?:\+\d{1,3}[ .\-]?)?(?:\(0\) ?)?(?:\(\d{1,4}\)[ .\-]?)?\d{1,5}(?:[ .\-]\d{1,7}){1,4}"
    r"(?:\s?(?:x|ext\.?)\s?\d{1,5})?(?![\w/]|-\d|\.\d)"
    r"|(?<![\w.\-/+])\+?\d{9,14}(?![\w/]|-\d|\.\d)|(?<![\w.\-/+])\(\d{2,4}\) ?\d{3,4}[ .\-]?\d{3,4}\b"
)
_PHONE_CUE = regex.compile(
    r"(?i)\b(?:phone|tel|telephone|mobile|cell|cellphone|fax|desk|call|calling|reach|text|whatsapp|sms|contact|"
    r"number|answering|messages\s+to|registered)\b"
)
_DATE_LIKE = regex.compile(
    r"(?:\d{4}[\-./]\d{1,2}[\-./]\d{1,2}|\d{1,2}[\-./]\d{1,2}[\-./]\d{2,4}|(?:19|20)\d{2}(?:\s?[\-–/]\s?|\s)(?:19|20)?\d{2})"
)


def find_phone_numbers(text: str) -> Found:
    """Phone numbers in national and international formats: 7 to 15 digits in groups, or after a phone cue.

    Dates, year ranges, times, prices and version numbers are not phones: a match must have 7-15 digits, must not
    look like a date, and a match of only dot-separated groups needs a phone cue.
    """
    for match in _PHONE.finditer(text):
        value = match.group()
        digits = sum(char.isdigit() for char in value)
        if not 7 <= digits <= 15 or _DATE_LIKE.fullmatch(value.strip()):
            continue
        before = text[max(0, match.start() - 40) : match.start()]
        after = text[match.end() : match.end() + 12].lstrip(" -")
        cued = bool(_PHONE_CUE.search(before)) or bool(_PHONE_CUE.match(after))
        structured = value.startswith(("+", "(")) or "-" in value or regex.search(r"\d\s\d", value)
        if value.isdigit() and not (cued or value.startswith("0")):
            continue
        if "." in value and not cued and regex.fullmatch(r"[\d.]+", value):
            continue
        if structured or cued:
            yield match.start(), match.end(), 0.6 if cued else 0.45


_ZIP_CUE = regex.compile(r"(?i)\b(?:zip(?:\s*code)?|postal\s*code|post\s*code|postcode|plz|cep)\b\s*(?:is|:)?\s*")
_ZIP_VALUE = regex.compile(r"\d{3,5}(?:[\s\-]\d{2,4})?(?:\s?\p{Lu}{2})?\b|\p{Lu}\d\p{Lu}\s?\d\p{Lu}\d\b")
_PLACE_ZIP = regex.compile(
    r"\b(?:in|at|near)\s+\p{Lu}[\p{L}\-']+\s+(?:\p{Lu}[\p{L}\-']*\s+){0,2}(?!(?:19|20)\d\d\b)"
    r"(\d{4,5}|\d{3}\s\d{2}|\d{2}-\d{3})\b"
)
_UK_POSTCODE = regex.compile(r"\b(?-i:[A-Z]{1,2}\d[A-Z\d]?\s\d[A-Z]{2})\b")
_CANADA_POSTCODE = regex.compile(r"\b(?-i:[A-Z]\d[A-Z]\s?\d[A-Z]\d)\b")
_STATE_ZIP = regex.compile(r"\b(?-i:[A-Z]{2})\s+(\d{5}(?:-\d{4})?)\b")


def find_zip_codes(text: str) -> Found:
    """Postcodes: after "zip"/"postal code"; UK and Canadian formats; after a state code or a place ("in Espoo 02100").

    Four-digit numbers after a place that look like years (19xx, 20xx) are left alone.
    """
    for cue in _ZIP_CUE.finditer(text):
        match = _ZIP_VALUE.match(text, cue.end())
        if match:
            yield match.start(), match.end(), 0.7
    for pattern in (_UK_POSTCODE, _CANADA_POSTCODE):
        for match in pattern.finditer(text):
            yield match.start(), match.end(), 0.5
    for match in _PLACE_ZIP.finditer(text):
        yield match.start(1), match.end(1), 0.35
    for match in _STATE_ZIP.finditer(text):
        yield match.start(1), match.end(1), 0.4


_CARD = regex.compile(r"(?<![\d\-])\d(?:[ \-]?\d){11,18}(?![\d\-])")
_CARD_CUE = regex.compile(r"(?i)\b(?:card|cc|credit|debit|visa|mastercard|amex|account)\b")


def find_card_numbers(text: str) -> Found:
    """Card numbers whether or not their checksum is valid: 13-19 digits, or 12 after a cue such as "card"."""
    for match in _CARD.finditer(text):
        cued = _CARD_CUE.search(text[max(0, match.start() - 40) : match.start()])
        if sum(char.isdigit() for char in match.group()) < 13 and not cued:
            continue
        yield match.start(), match.end(), 0.6 if cued else 0.35


_ID_CUE = regex.compile(
    r"(?i)\b(?:driver'?s?\s+licen[cs]e|licen[cs]e\s+(?:number|no\.?|#)|passport|national\s+id|id\s+(?:number|no\.?)|"
    r"account\s+(?:number|no\.?)|member(?:ship)?\s+(?:id|number)|policy\s+(?:number|no\.?)|customer\s+(?:id|number)|"
    r"employee\s+(?:id|number)|tax\s+id)\b(?:\s+(?:number|no\.?|#))?"
    r"(?:\s+(?:is|was))?\s*[:#]?\s*"
)
_ID_VALUE = regex.compile(r"(?=[\w\-]*\d)[A-Za-z0-9][A-Za-z0-9\-]{3,24}\b")


def find_id_numbers(text: str) -> Found:
    """An alphanumeric code with a digit right after an ID cue ("driver's license number is F162823540116")."""
    for cue in _ID_CUE.finditer(text):
        match = _ID_VALUE.match(text, cue.end())
        if match:
            yield match.start(), match.end(), 0.6


# ---------------------------------------------------------------------------------------------------------------
# Names

_NAME_TOKEN = r"\p{Lu}\p{Ll}+(?:[\-'’]\p{Lu}?\p{Ll}+)*"
_INITIAL = r"\p{Lu}\.?"
_PARTICLE = r"(?:van|von|der|den|de|del|della|da|di|du|dos|das|ten|ter|le|la|bin|ibn|al|el|y)"
_CAPITALISED_RUN = regex.compile(
    rf"(?<![\p{{L}}\d])(?:{_NAME_TOKEN}|{_INITIAL})(?:\s(?:{_PARTICLE}\s)?(?:{_NAME_TOKEN}|{_INITIAL}))*"
    rf"(?![\p{{L}}\d])"
)
_STRONG_NAME_CUE = regex.compile(
    r"(?i)\b(?:my\s+name\s+is|my\s+name's|name\s+is|names?\s*:|(?:call|calls)\s+me|i\s+go\s+by|named|called|signed,?|"
    r"(?:mr|mrs|ms|miss|dr|prof|sir|madam|mx)\.?|user\s*:|patient\s*:?|(?:first|last|full)\s+name\s*(?:is|:|\?)?)\s+"
)
#: Before a single capitalised non-English word (or a lower-case one), these say it is a person.
_WEAK_NAME_CUE = regex.compile(
    r"(?i)\b(?:i'm|i\s+am|this\s+is|ask|tell|dear|hi|hello|hey|thanks|thank\s+you|regards,?|cheers,?|meet|met|"
    r"called|named|producer|director|directed\s+by:?|written\s+by|song\s+by|tribute\s+to|remember\s+me,?|"
    r"gender\s+of|founders:?|verses\s+from|why\s+is|speak\s+to|talk\s+to)\s+"
)
#: After a single capitalised non-English word, these say it is a person ("Shovda is very reliable", "Ella: ...").
_PERSON_AFTER = regex.compile(
    r"(?i)(?::(?=\s*[\"\p{L}])|,\s+(?:can|could|would|will|please)\b|\s+(?:said|says|told|asked|lives|lived|spent|"
    r"began|begins|wrote|writes|shouted|replied|thinks|thought|feels|felt|loves|loved|hates|married|died|"
    r"was\s+born|has\s+been|had\s+given|is\s+(?:very|so|a\s+very)|was\s+(?:very|so)|so\s+\w+\?|"
    r"and\s+\p{Lu}\p{Ll}+\s+(?:were|are|have|had))\b)"
)
#: After these, a capitalised word is a person even when it is also an English word ("my friend Will").
_RELATION_CUE = regex.compile(
    r"(?i)\b(?:(?:my|his|her|our|your|their)\s+(?:kid|child|son|daughter|wife|husband|friend|boss|brother|sister|"
    r"mother|father|mom|mum|dad|colleague|partner|cousin|uncle|aunt|grandson|granddaughter|neighbou?r|boyfriend|"
    r"girlfriend|fianc[ée]e?|roommate|coworker|manager|teacher|doctor)|said|told|asked|shouted\s+at|spoke\s+to|"
    r"talked\s+to|married|dating)\s+"
)
#: A text that opens with a line of two or three words, as a signature or letterhead does ("leone mazzi\n").
_FIRST_LINE_NAME = regex.compile(r"[\s>?]*(\p{L}[\p{L}'’\-]+(?:\s\p{L}\.?)?(?:\s\p{L}[\p{L}'’\-]+){1,2})[ \t]*\n")
_CODE = frozenset(
    {"import", "from", "def", "class", "return", "using", "include", "package", "select", "print", "let", "const",
     "var", "fn", "func"}
)
_LOWER_NAME = regex.compile(r"\p{L}[\p{L}'’\-]+(?:\s\p{L}\.)?(?:\s\p{L}[\p{L}'’\-]+)?")
_PARTICLES = frozenset(_PARTICLE[3:-1].split("|"))


#: Regular English endings and what the lemma may end with instead ("migrating" -> "migrate").
_INFLECTIONS = (("ies", ("y",)), ("ing", ("", "e")), ("ed", ("", "e")), ("es", ("", "e")), ("s", ("",)))


def _person_after(text: str, start: int, end: int) -> bool:
    after = _PERSON_AFTER.match(text, end)
    if not after:
        return False
    # "Name:" says a person speaks only at the start of a line ("Ella: What a wife."), not mid-sentence.
    return not after.group().startswith(":") or not text[text.rfind("\n", 0, start) + 1 : start].strip(" >")


def english_word_test(lexicon: frozenset[str]) -> Callable[[str], bool]:
    """Whether a token is an English word: a stop word, a name particle, or (with a regular ending removed) a word
    of ``lexicon``. With an empty lexicon every token counts as English, so no rule fires on foreign-ness alone."""
    from spacy.lang.en.stop_words import STOP_WORDS

    def is_word(token: str) -> bool:
        lower = token.lower().rstrip(".").replace("’", "'")
        if lower in STOP_WORDS or lower in _PARTICLES:
            return True
        if not lexicon:
            return True
        stem = lower[:-2] if lower.endswith("'s") else lower
        forms = [stem]
        for suffix, replacements in _INFLECTIONS:
            if stem.endswith(suffix):
                forms.extend(stem[: -len(suffix)] + ending for ending in replacements)
        return any(form in lexicon for form in forms if len(form) > 2)

    return is_word


def product_like(token: str) -> bool:
    """Capitalised words with an inner capital or a digit (``PyTorch``, ``GPT4``) are products, not names."""
    return any(char.isupper() for char in token[1:]) or any(char.isdigit() for char in token)


def make_name_finder(lexicon: frozenset[str]) -> Callable[[str], Found]:
    """A rule for names spaCy's small model misses, given a set of lower-case English words.

    - After a strong cue ("my name is", "call me", "Name:", "Mr."), the next one to three words, lower-case too,
      unless the first is an English function word.
    - Runs of two or more capitalised words where at least one is not an English word ("Impi Nummelin",
      "Willemine ten Pas"); a single one ("Vasquez") only beside a cue that it is a person ("ask Vasquez",
      "Shovda is very reliable", "Ella: ..."), since single foreign words are as often products ("Django");
      any capitalised word after a relation ("my friend Will", "shouted at Scott").
    - After "I'm", "this is", "ask" and the like, a lower-case word that is not English ("i'm borna").
    - A first line of two or three words, one of them not English and none a function word or code keyword, as a
      signature opens ("leone mazzi").

    Capitalised words with an inner capital or a digit (``PyTorch``, ``GPT4``) are products, not names.
    """
    from spacy.lang.en.stop_words import STOP_WORDS

    is_word = english_word_test(lexicon)

    def find(text: str) -> Found:
        strong_ends = {cue.end() for cue in _STRONG_NAME_CUE.finditer(text)}
        weak_ends = {cue.end() for cue in _WEAK_NAME_CUE.finditer(text)}
        relation_ends = {cue.end() for cue in _RELATION_CUE.finditer(text)}
        for start in strong_ends:
            match = _LOWER_NAME.match(text, start)
            if match and match.group().split()[0].lower() not in STOP_WORDS:
                words = match.group().split()
                # Keep later words only if they look like names too (capitalised or not English).
                kept = [words[0]] + [w for w in words[1:2] if w[:1].isupper() or not is_word(w)]
                end = match.start() + len(" ".join(kept))
                yield match.start(), end, 0.6
        for match in _CAPITALISED_RUN.finditer(text):
            start, tokens = match.start(), match.group().split()
            # A sentence's first word is capitalised whatever it is ("Deploy Django"): English words lead no name.
            while tokens and is_word(tokens[0]) and start not in relation_ends | strong_ends | weak_ends:
                start = text.index(tokens[1], start + len(tokens[0])) if len(tokens) > 1 else match.end()
                tokens = tokens[1:]
            names = [t for t in tokens if t.lower() not in _PARTICLES and len(t.rstrip(".")) > 1]
            if not names or any(product_like(t) for t in names):
                continue
            foreign = [t for t in names if not is_word(t) and len(t) >= 3]
            if start in relation_ends or foreign and len(tokens) >= 2:
                yield start, match.end(), 0.5
            elif start in weak_ends or start in strong_ends or (foreign and _person_after(text, start, match.end())):
                yield start, match.end(), 0.4
        first_line = _FIRST_LINE_NAME.match(text)
        words = first_line.group(1).lower().split() if first_line else []
        if any(not is_word(w) and len(w) > 2 for w in words) and not any(w in STOP_WORDS or w in _CODE for w in words):
            yield first_line.start(1), first_line.end(1), 0.4
        for start in weak_ends:
            match = _LOWER_NAME.match(text, start)
            if match and match.group()[0].islower():
                first = match.group().split()[0]
                if not is_word(first) and not product_like(first):
                    yield match.start(), match.start() + len(first), 0.4

    return find


# ---------------------------------------------------------------------------------------------------------------
# Names from a gazetteer: the US Census Bureau's first names and surnames (the ``names`` package)


@dataclass(frozen=True)
class NameGazetteer:
    """Lower-case, accent-folded first names and surnames."""

    first_names: frozenset[str]
    surnames: frozenset[str]


@functools.cache
def name_gazetteer() -> NameGazetteer:
    """The first names (5,163) and surnames (88,799) of the 1990 US Census, loaded once.

    The lists ship in the ``names`` package (MIT licence; the Census Bureau's data is in the public domain): each
    line of ``dist.male.first``, ``dist.female.first`` and ``dist.all.last`` starts with a name in capitals.
    """
    from importlib.resources import files

    def read(name: str) -> frozenset[str]:
        text = files("names").joinpath(name).read_text(encoding="ascii")
        return frozenset(line.split()[0].lower() for line in text.splitlines() if line.strip())

    return NameGazetteer(read("dist.male.first") | read("dist.female.first"), read("dist.all.last"))


def fold(word: str) -> str:
    """``word`` in lower case without accents, the form the gazetteer holds ("Ström" -> "strom")."""
    if word.isascii():
        return word.lower()
    return "".join(c for c in unicodedata.normalize("NFKD", word) if not unicodedata.combining(c)).lower()


#: A word on its own: not part of an identifier, path, e-mail, dotted or hyphenated name; a possessive "'s" is kept.
_GAZETTEER_TOKEN = regex.compile(
    r"(?<![\p{L}\d_@#/\\.\-])\p{L}+(?:['’]\p{L}+)*(?![\p{L}\d_@/\\]|[.\-]\p{L}|\.\d)"
)
_POSSESSIVE = regex.compile(r"['’]s$")
#: After "Name's", kin and belongings that say the name is a person's ("Franciska's kid").
_KIN_AFTER_POSSESSIVE = regex.compile(
    r"\s+(?:kid|kids|child|children|son|daughter|wife|husband|mother|father|mom|mum|dad|brother|sister|parents|"
    r"family|friend|boyfriend|girlfriend|partner|baby|grandmother|grandfather)\b"
)
#: Code declares names of its own ("class Foo", "new Paris()"); a word followed by these is a product ("Seaborn code").
_CODE_BEFORE = frozenset(
    {"class", "def", "struct", "interface", "enum", "new", "import", "extends", "implements", "fn"}
)
_THING_AFTER = regex.compile(
    r"(?i)[ \t]+(?:code|library|libraries|package|module|framework|api|sdk|plugin|app|model|dataset|function|class|"
    r"method|script|version|server|file|files|plot|chart|docs|documentation|syntax|project|repo|repository|command)\b"
)
#: A name alone on the line after a closing ("Best regards,\nScott", "Thanks,\nAna Dias").
_SIGNATURE = regex.compile(
    r"(?m)^[ \t>]*\p{L}+(?:[ \t]\p{L}+){0,2},[ \t]*\n[ \t>]*(\p{Lu}\p{Ll}+(?:[ \t]\p{Lu}\p{Ll}+)?)[ \t]*$"
)
#: A lower-case list of three or more single words ("silvana, adam, christopher, kristina, chad and caleb").
_LOWER_LIST = regex.compile(
    r"(?<![\p{L}\d])\p{Ll}+(?:,\s\p{Ll}+){1,},?\s(?:and|or|&)\s\p{Ll}+(?![\p{L}\d])"
)


def make_gazetteer_name_finder(
    lexicon: frozenset[str], common_words: frozenset[str] = frozenset()
) -> Callable[[str], Found]:
    r"""A rule for names that have no cue but are in the census name lists (:func:`name_gazetteer`).

    ``lexicon`` holds lower-case English words (see :func:`english_word_test`), ``common_words`` those WordNet also
    knows as a verb, adjective or adverb ("will", "rose"): an English first name outside them is a WordNet noun
    only, often a person or place ("scott", "victoria"). Without ``common_words`` every English word counts as
    common. A word is a *census name* when its accent-folded form, without a possessive "'s", is a census first
    name or surname; stop words never are.

    - A capitalised census name that is not an English word stands alone ("Kastner", "Celina", "Ström's").
    - A capitalised first name followed by a capitalised surname or non-English word ("Ana Dias", "Fletcher Hill"),
      unless both are English and the first is a common word ("Will Power") or a determiner comes before ("The
      Princess Royal").
    - A capitalised first name that is an English word only beside a sign of a person: a person verb after it
      ("Scott is a very...", "Jacob lives on"), a speaker's colon at the start of a line ("Destiny: ..."), or,
      when it is not a common word, in a possessive ("Sarah's car") or alone in mid-sentence
      (:func:`_mid_sentence`: "leave me Victoria, four...").
      An English surname ("Wisdom", "Hill") never stands alone.
    - Lower-case: a first name and a surname beside a sign of a person ("eva kleist lives at"), a non-English first
      name as a speaker ("mika: ..."), a name with a middle initial ("codey m ross"), and the items of a list of
      three or more words two thirds of which are first names ("silvana, adam, christopher, kristina, chad and
      caleb").
    - Any capitalised non-English word followed by "'s" and a kin word ("Franciska's kid").
    - A first name (and surname) alone on the line after a closing ("Best regards,\nScott").

    Capitalised words with an inner capital or a digit are products, and all-capital words acronyms: neither is a
    name here, nor is a word that code declares ("class Foo") or that names a thing ("Seaborn code").

    Examples
    --------
    >>> find = make_gazetteer_name_finder(frozenset({"scott", "sympathetic", "person"}))
    >>> text = "Scott is a very sympathetic person. Kastner agrees."
    >>> [text[start:end] for start, end, _ in find(text)]
    ['Scott', 'Kastner']
    """
    from spacy.lang.en.stop_words import STOP_WORDS

    is_word = english_word_test(lexicon)
    gazetteer = name_gazetteer()
    first_names, surnames = gazetteer.first_names, gazetteer.surnames

    def find(text: str) -> Found:
        tokens = [(m.start(), m.end(), _POSSESSIVE.sub("", m.group())) for m in _GAZETTEER_TOKEN.finditer(text)]
        for index, (start, end, word) in enumerate(tokens):
            key = fold(word)
            if len(word) < 3 or key in STOP_WORDS:
                continue
            first, last = key in first_names, key in surnames
            possessive = end - start > len(word)
            following = None if possessive else _following_name(text, tokens, index)
            if word[0].isupper() and not product_like(word):
                if index and tokens[index - 1][2] in _CODE_BEFORE or _THING_AFTER.match(text, end):
                    continue
                english = is_word(word)
                if not (first or last):
                    if not english and possessive and _KIN_AFTER_POSSESSIVE.match(text, end):
                        yield start, end, 0.4
                    continue
                # An English word that WordNet knows only as a noun is often a person or place ("Scott").
                proper = not english or bool(common_words) and key not in common_words and key not in _CALENDAR
                if not english or first and (
                    _person_after(text, start, end) or proper and (possessive or _mid_sentence(text, tokens, index))
                ):
                    yield start, end, 0.4
                if first and following and not _after_determiner(tokens, index):
                    next_end, next_word, _ = following
                    if (
                        next_word[0].isupper()
                        and not product_like(next_word)
                        and (fold(next_word) in surnames or not is_word(next_word))
                        and (proper or not is_word(next_word))
                    ):
                        yield start, next_end, 0.4
            elif word.islower() and (first or last):
                english = is_word(word)
                if following and following[1].islower():
                    next_end, next_word, initial = following
                    both_names = first and fold(next_word) in surnames
                    if initial and (both_names or not (english and is_word(next_word))) or (
                        both_names and _person_after(text, start, next_end)
                    ):
                        yield start, next_end, 0.4
                        continue
                if first and not english and _person_after(text, start, end):
                    yield start, end, 0.4
        for signature in _SIGNATURE.finditer(text):
            if fold(signature.group(1).split()[0]) in first_names:
                yield signature.start(1), signature.end(1), 0.4
        for listing in _LOWER_LIST.finditer(text):
            items = [item for item in regex.finditer(r"\p{Ll}+", listing.group()) if item.group() not in ("and", "or")]
            if len(items) >= 3 and sum(fold(item.group()) in first_names for item in items) * 3 >= len(items) * 2:
                for item in items:
                    yield listing.start() + item.start(), listing.start() + item.end(), 0.4

    return find


#: After these a capitalised word is a place more often than a person ("in Virginia", "near Austin").
_PLACE_PREPOSITIONS = frozenset({"in", "at", "near", "across", "around", "throughout", "outside", "inside", "via"})
#: Verbs that take a person after "to" or "from" ("gave it to Anna", "said Željko to Teresa", "heard from Scott").
_GIVING = regex.compile(
    r"(?i)\b(?:said|says|say|told|tell|gave|give|gives|given|sent|send|sends|wrote|write|writes|talked|talk|spoke|"
    r"speak|sang|sing|introduced|married|belongs?|belonged|lent|lend|owe[sd]?|handed|hand|showed|show|heard|hear|"
    r"letter|message|email|call|calls|called|reply|replied|listen|listened|explained|explain|apologi[sz]ed)\b"
    r"[^.!?\n]*\s(?:to|from)\s$"
)
_DETERMINERS = frozenset({"the", "a", "an", "this", "that", "these", "those", "our", "their", "its"})
_CALENDAR = frozenset(
    {
        "january", "february", "march", "april", "may", "june", "july", "august", "september", "october", "november",
        "december", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "jan", "feb", "mar",
        "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
    }
)


def _after_determiner(tokens: list, index: int) -> bool:
    """Whether token ``index`` follows "the", "a" or "this": a title or a thing ("The Princess Royal"), not a name."""
    return index > 0 and tokens[index - 1][2].lower() in _DETERMINERS


def _mid_sentence(text: str, tokens: list, index: int) -> bool:
    """Whether token ``index`` is a capitalised word alone inside a sentence: after a lower-case word (and at most
    a comma), before no other capitalised word; such a word is a proper name ("leave me Victoria, four...")."""
    start, end, word = tokens[index]
    if index == 0:
        return False
    previous_end, previous = tokens[index - 1][1:]
    if not previous.islower() or previous in _PLACE_PREPOSITIONS or previous in _DETERMINERS:
        return False
    if text[previous_end:start] not in (" ", ", "):
        return False
    # "to" and "from" lead to places ("a trip to Paris") unless a person verb comes first ("said it to Teresa").
    if previous in ("to", "from") and not _GIVING.search(text, max(0, start - 60), start):
        return False
    following = tokens[index + 1] if index + 1 < len(tokens) else None
    return not (following and following[2][:1].isupper() and text[end : following[0]] == " ")


def _following_name(text: str, tokens: list, index: int) -> tuple[int, str, bool] | None:
    """The end and word of the token that follows token ``index`` after one space, or after a middle initial
    ("Faina D. Yefremova", "codey m ross"), and whether there was an initial; ``None`` when anything else
    separates them."""
    end = tokens[index][1]
    for step in (1, 2):
        if index + step >= len(tokens):
            return None
        next_start, next_end, next_word = tokens[index + step]
        gap = text[end:next_start]
        # A single letter is a middle initial ("Faina D. Yefremova"), but "a" and "I" are words.
        if step == 1 and len(next_word) == 1 and gap == " " and next_word.lower() not in ("a", "i"):
            end = next_end + (text[next_end : next_end + 1] == ".")
            continue
        if gap != " ":
            return None
        return next_end, next_word, step == 2
    return None


_LIST_ITEM = regex.compile(r"(?<![\p{L}\d])\p{Lu}[\p{L}'’\-]+(?![\p{L}\d])")
#: Capitalised words joined by commas and "and"/"or" ("Kónya, Becker and Vasquez").
_NAME_LIST = regex.compile(
    r"(?<![\p{L}\d])\p{Lu}[\p{L}'’\-]+(?:,\s\p{Lu}[\p{L}'’\-]+)*,?\s(?:and|or|&)\s\p{Lu}[\p{L}'’\-]+(?![\p{L}\d])"
)
_NAME_PART = regex.compile(r"(?<![\p{L}\d])[\p{L}'’\-]{3,}(?![\p{L}\d])")


def propagate_names(text: str, spans: list[Span]) -> list[Span]:
    """Every other occurrence of a word of a detected name is that person too ("Magnus ... Magnus Poulsen"), and so
    is every capitalised word listed with a detected name ("Kónya, Becker and Vasquez").

    Examples
    --------
    >>> text = "Directed by Maciej Borkowski and starring Borkowski"
    >>> [text[s.start:s.end] for s in propagate_names(text, [Span(12, 28, "PERSON")])]
    ['Maciej Borkowski', 'Borkowski']
    """
    words = {
        _POSSESSIVE.sub("", word)
        for span in spans
        if span.entity_type == "PERSON"
        for word in _NAME_PART.findall(text, span.start, span.end)
        if word.lower() not in _PARTICLES
    }
    if not words:
        return spans
    # A possessive is the same name ("Emmie Ström's Tales ... early Ström").
    extra = [
        Span(m.start(), m.end(), "PERSON", 0.4)
        for m in _NAME_PART.finditer(text)
        if _POSSESSIVE.sub("", m.group()) in words
    ]
    people = [span for span in [*spans, *extra] if span.entity_type == "PERSON"]
    for listing in _NAME_LIST.finditer(text):
        items = list(_LIST_ITEM.finditer(text, listing.start(), listing.end()))
        if any(span.start < item.end() and item.start() < span.end for item in items for span in people):
            extra.extend(Span(item.start(), item.end(), "PERSON", 0.4) for item in items)
    return merge_spans(text, [*spans, *extra])


# ---------------------------------------------------------------------------------------------------------------
# Handles, obfuscated e-mails, API keys, dates of birth

_HANDLE = regex.compile(r"(?<![\w.@/])@[A-Za-z0-9_](?:[A-Za-z0-9_.]{0,28}[A-Za-z0-9_])?(?![\w@(/])")
#: Code and style sheets use ``@name`` for other things than people.
_NOT_HANDLES = frozenset(
    {
        "property", "staticmethod", "classmethod", "dataclass", "override", "deprecated", "abstractmethod",
        "cached_property", "media", "import", "keyframes", "font-face", "supports", "page", "charset", "namespace",
        "layer", "tailwind", "apply", "param", "return", "returns", "throws", "see", "author", "since", "version",
        "link", "interface", "implementation", "end", "synthesize", "protocol", "optional", "required", "objc",
        "app", "pytest", "mock", "patch", "fixture", "jit", "njit", "lru_cache", "wraps", "overload", "final",
        "test", "before", "after", "component", "injectable", "input", "output", "autowired", "bean", "service",
        "controller", "entity", "table", "column", "id", "get", "post", "put", "delete", "mixin", "include",
        "extend", "if", "else", "each", "for", "while", "function", "use", "forward", "tailwindcss", "notice",
        "dev", "echo", "title", "name", "pass", "inheritdoc", "custom", "type", "typedef", "callback", "example",
        "brief", "details", "todo", "fixme", "note", "warning", "description", "summary", "remarks", "value",
    }
)


def find_handles(text: str) -> Found:
    """Social handles (``@jane_doe``), except decorators, doc tags (``@notice``), package scopes (``@scope/pkg``)
    and the at-rules of style sheets."""
    for match in _HANDLE.finditer(text):
        name = match.group()[1:]
        line_start = text.rfind("\n", 0, match.start()) + 1
        at_line_start = not text[line_start : match.start()].strip()
        if name.lower() in _NOT_HANDLES or (at_line_start and text[match.end() : match.end() + 1] in ("(", "\n", "")):
            continue
        yield match.start(), match.end(), 0.6


_AT = r"\s*(?:\(|\[|\{|<)?\s*(?:at|@)\s*(?:\)|\]|\}|>)?\s*"
_DOT = r"\s*(?:\(|\[|\{|<)?\s*(?:dot|\.)\s*(?:\)|\]|\}|>)?\s*"
_OBFUSCATED_EMAIL = regex.compile(
    rf"(?i)\b[\w.+\-]+(?:\s+(?:at)\s+|\s*[\(\[\{{<]\s*(?:at|@)\s*[\)\]\}}>]\s*)[\w\-]+(?:{_DOT}[\w\-]+)*"
    rf"(?:\s+dot\s+|\s*[\(\[\{{<]\s*(?:dot|\.)\s*[\)\]\}}>]\s*|\.)(?:com|org|net|edu|gov|io|co|uk|de|fr|info|me|"
    rf"[a-z]{{2}})\b"
)


def find_obfuscated_emails(text: str) -> Found:
    """E-mail addresses written to dodge scrapers: ``jane at example dot com``, ``jane[at]example[dot]org``."""
    for match in _OBFUSCATED_EMAIL.finditer(text):
        yield match.start(), match.end(), 0.7


_KEY_PREFIXES = regex.compile(
    r"\b(?:sk-(?:proj-|ant-|live-)?[A-Za-z0-9_\-]{16,}|(?:sk|pk|rk)_(?:live|test)_[A-Za-z0-9]{10,}|"
    r"gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|glpat-[A-Za-z0-9_\-]{16,}|"
    r"xox[abposr]-[A-Za-z0-9\-]{10,}|(?:AKIA|ASIA)[A-Z0-9]{16}|AIza[A-Za-z0-9_\-]{35}|hf_[A-Za-z0-9]{20,}|"
    r"eyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{5,}|npm_[A-Za-z0-9]{30,}|"
    r"SG\.[A-Za-z0-9_\-]{16,}\.[A-Za-z0-9_\-]{16,})"
)
_TOKEN_CANDIDATE = regex.compile(r"(?<![\w/.\-=])[A-Za-z0-9_\-+/]{20,}={0,2}(?![\w/.\-=])")
_SECRET_CUE = regex.compile(r"(?i)\b(?:key|token|secret|password|passwd|pwd|bearer|auth|credential|api)\b")


def shannon_entropy(value: str) -> float:
    """Bits per character of ``value``'s character distribution."""
    counts = Counter(value)
    return -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())


def class_switches(value: str) -> float:
    """Share of adjacent characters that switch between digit, upper-case, lower-case and other.

    Random keys switch about six times in ten; identifiers and words (``MetFamily-master_14122023``) rarely do.
    """
    kinds = ["d" if c.isdigit() else "u" if c.isupper() else "l" if c.islower() else "o" for c in value]
    return sum(a != b for a, b in zip(kinds, kinds[1:], strict=False)) / max(len(value) - 1, 1)


def find_api_keys(text: str) -> Found:
    """API keys and tokens: known prefixes (``sk-``, ``ghp_``, ``AKIA``, JWTs...) or long high-entropy strings.

    A high-entropy string has 20+ characters mixing digits, upper and lower case, switching between them often
    (:func:`class_switches` at least 0.3), with at least 4 bits of entropy per character; after a cue such as
    "token" or "key", one case is enough and 3.5 bits. Hex digests such as git hashes and UUIDs need the cue.
    Words, paths, identifiers_with_underscores and KEY=value settings do not qualify.
    """
    for match in _KEY_PREFIXES.finditer(text):
        yield match.start(), match.end(), 0.8
    for match in _TOKEN_CANDIDATE.finditer(text):
        value = match.group()
        if not (regex.search(r"\d", value) and regex.search(r"[A-Za-z]", value)):
            continue
        cued = bool(_SECRET_CUE.search(text[max(0, match.start() - 30) : match.start()]))
        if class_switches(value) < 0.3 or not (cued or regex.search(r"[A-Z]", value) and regex.search(r"[a-z]", value)):
            continue
        if shannon_entropy(value) >= (3.5 if cued else 4.0):
            yield match.start(), match.end(), 0.6


_BIRTH_CUE = regex.compile(
    r"(?i)\b(?:born(?:\s+on|\s+in)?|date\s+of\s+birth|d\.?o\.?b\.?|birthday(?:\s+is)?)\s*[:\-]?\s*"
)
_DATE = regex.compile(
    r"(?i)\d{1,4}[\-./]\d{1,2}[\-./]\d{1,4}|\d{1,2}(?:st|nd|rd|th)?\s+\p{L}{3,9}\.?,?\s+\d{4}|"
    r"\p{L}{3,9}\.?\s+\d{1,2}(?:st|nd|rd|th)?,?\s+\d{4}"
)


def find_dates_of_birth(text: str) -> Found:
    """A full date right after "born", "date of birth", "DOB" or "birthday"; other dates stay text."""
    for cue in _BIRTH_CUE.finditer(text):
        match = _DATE.match(text, cue.end())
        if match:
            yield match.start(), match.end(), 0.6


# ---------------------------------------------------------------------------------------------------------------
# Presidio wrappers

#: Each format rule and the entity type it finds; the name rule needs the lexicon and is added by
#: :func:`build_recognizers`.
RULES: dict[str, Callable[[str], Found]] = {
    "STREET_ADDRESS": find_street_addresses,
    "PHONE_NUMBER": find_phone_numbers,
    "ZIP_CODE": find_zip_codes,
    "CREDIT_CARD": find_card_numbers,
    "ID_NUMBER": find_id_numbers,
    "HANDLE": find_handles,
    "EMAIL_ADDRESS": find_obfuscated_emails,
    "API_KEY": find_api_keys,
    "DATE_OF_BIRTH": find_dates_of_birth,
}


def build_recognizers(lexicon: frozenset[str], common_words: frozenset[str] = frozenset()) -> list:
    """Presidio recognizers for every rule of this module; ``lexicon`` holds lower-case English words and
    ``common_words`` those of them that are not only nouns (see :func:`make_gazetteer_name_finder`)."""
    from presidio_analyzer import EntityRecognizer, RecognizerResult

    class RuleRecognizer(EntityRecognizer):
        def __init__(self, entity: str, rule: Callable[[str], Found], name: str):
            self.rule = rule
            super().__init__(supported_entities=[entity], name=name, supported_language="en")

        def load(self) -> None:
            """Nothing to load: the rule is a function."""

        def analyze(self, text, entities, nlp_artifacts=None):
            entity = self.supported_entities[0]
            return [
                RecognizerResult(entity, start, end, score)
                for start, end, score in self.rule(text)
                if end > start
            ]

    recognizers = [RuleRecognizer(entity, rule, f"clio_lite_{rule.__name__}") for entity, rule in RULES.items()]
    recognizers.append(RuleRecognizer("PERSON", make_name_finder(lexicon), "clio_lite_find_names"))
    recognizers.append(RuleRecognizer("PERSON", make_gazetteer_name_finder(lexicon, common_words),
                                        "clio_lite_find_census_names"))
    return recognizers
