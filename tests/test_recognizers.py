"""clio_lite's rule-based recognizers: what each finds, what it leaves alone, and how detections are merged."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clio_lite.recognizers import (
    Span,
    find_api_keys,
    find_card_numbers,
    find_dates_of_birth,
    find_handles,
    find_id_numbers,
    find_obfuscated_emails,
    find_phone_numbers,
    find_street_addresses,
    find_zip_codes,
    fold,
    make_gazetteer_name_finder,
    make_name_finder,
    merge_spans,
    name_gazetteer,
    propagate_names,
    shannon_entropy,
)
from clio_lite.scrub import _english_lexicon, replace_spans, resolve_spacy_model


def found(rule, text: str) -> set[str]:
    return {text[start:end] for start, end, _ in rule(text)}


# (rule, text, the value it must find)
POSITIVES = [
    (find_phone_numbers, "call me on +44 20 7946 0958", "+44 20 7946 0958"),
    (find_phone_numbers, "Phone: (555) 123-4567", "(555) 123-4567"),
    (find_phone_numbers, "They're not answering at 0680 298 70 63", "0680 298 70 63"),
    (find_phone_numbers, "Desk: (898)666-3621x0135", "(898)666-3621x0135"),
    (find_phone_numbers, "mobile: 99 577450", "99 577450"),
    (find_phone_numbers, "fax +41 (0)85 806 98 67", "+41 (0)85 806 98 67"),
    (find_phone_numbers, "085 175 7641-Office", "085 175 7641"),
    (find_zip_codes, "my zip code is 90210", "90210"),
    (find_zip_codes, "ZIP: 7412 SL", "7412 SL"),
    (find_zip_codes, "postcode SW1A 1AA", "SW1A 1AA"),
    (find_zip_codes, "Denver, CO 80203", "80203"),
    (find_zip_codes, "to support Acme in Espoo 02100 in its mission", "02100"),
    (find_zip_codes, "to support Acme in København K 1421 in its mission", "1421"),  # a district letter
    (find_street_addresses, "I live at 42 Elm Street, Springfield", "42 Elm Street, Springfield"),
    (find_street_addresses, "send it to 7494 Hlíðarvegur 97", "7494 Hlíðarvegur 97"),
    (find_street_addresses, "Megan lives on Via Tasso 129", "Via Tasso 129"),
    (find_street_addresses, "The bus drops you off at 56 rue La Boétie", "56 rue La Boétie"),
    (find_street_addresses, "The restaurant is at PSC 0729, Box 5797", "PSC 0729, Box 5797"),
    (find_street_addresses, "meet me at 2407 tawastintie 6, sé, portugal", "2407 tawastintie 6, sé, portugal"),
    (find_street_addresses, "Name: Ann\n3654 Brixtonlaan 380\nSuite 727\nCharleroi\nBelgium 42940",
     "3654 Brixtonlaan 380\nSuite 727\nCharleroi\nBelgium 42940"),
    (find_street_addresses, "Address: Ana\n31401 ul. Słowicza 10 Apt. 360\nWrocław\n53-320",
     "31401 ul. Słowicza 10 Apt. 360\nWrocław\n53-320"),  # a Polish postcode ends the block
    (find_handles, "follow @jane_doe for updates", "@jane_doe"),
    (find_handles, "ping @Bob42 about it", "@Bob42"),
    (find_obfuscated_emails, "write to john at example dot com", "john at example dot com"),
    (find_obfuscated_emails, "jane[at]mail[dot]org", "jane[at]mail[dot]org"),
    (find_obfuscated_emails, "bob (at) corp.co.uk", "bob (at) corp.co.uk"),
    (find_api_keys, "my key is sk-proj-abcdefghijklmnop1234", "sk-proj-abcdefghijklmnop1234"),
    (find_api_keys, "ghp_abcdefghijklmnopqrstuvwxyz0123456789", "ghp_abcdefghijklmnopqrstuvwxyz0123456789"),
    (find_api_keys, "aws AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE"),
    (find_api_keys, "token: 9fK2xQ7LmP4vR8sT1wY6zB3nC5", "9fK2xQ7LmP4vR8sT1wY6zB3nC5"),
    (find_card_numbers, "What is the limit for card 4454794511390933?", "4454794511390933"),
    (find_card_numbers, "limit on my card # 503890547220", "503890547220"),
    (find_id_numbers, "My driver's license number is F162823540116", "F162823540116"),
    (find_id_numbers, "passport number: X1234567", "X1234567"),
    (find_dates_of_birth, "She was born on 2/8/1935", "2/8/1935"),
    (find_dates_of_birth, "DOB: 1990-05-03", "1990-05-03"),
    (find_dates_of_birth, "born on March 3, 1980", "March 3, 1980"),
]

# Near misses: what each rule must leave alone.
NEGATIVES = [
    (find_phone_numbers, "upgrade from version 1.2.3 to 10.0.2"),
    (find_phone_numbers, "it cost $1,299.99 last year"),
    (find_phone_numbers, "sales grew from 2019-2020"),
    (find_phone_numbers, "the meeting is on 2024-05-01 at 12:30"),
    (find_phone_numbers, "the server is 192.168.1.20"),
    (find_phone_numbers, "between the years 1999 2000"),
    (find_phone_numbers, "the population is 13960000"),
    (find_zip_codes, "I have 90210 points"),
    (find_zip_codes, "back in London 2012"),
    (find_zip_codes, "room 4012 is free"),
    (find_street_addresses, "I have 3 apples and 4 oranges"),
    (find_street_addresses, "Python 3 is great"),
    (find_street_addresses, "we met at the station"),
    (find_street_addresses, "10/9/2023\tPOSITIVE\t0.98\n10/10/2023\tNEGATIVE\t0.7"),  # table cells
    (find_street_addresses, "Atlanta\t400\nHouston\t500"),
    (find_street_addresses, "I walk 1700 steps, then move to step 1"),
    (find_street_addresses, "The meeting is at 12:30 on 2024-05-01"),
    (find_street_addresses, "the flag is at 0x100000 and up"),
    (find_handles, "@property\ndef name(self):"),
    (find_handles, "@media screen and (max-width: 600px)"),
    (find_handles, "mail a@b.com"),
    (find_handles, '@app.route("/")'),
    (find_handles, "/// @notice Returns the balance"),
    (find_handles, "npm i @tanstack/react-query"),
    (find_obfuscated_emails, "look at the dot"),
    (find_obfuscated_emails, "meet at example com"),
    (find_api_keys, "the function get_user_account_information_by_id"),
    (find_api_keys, "commit 3f9a2c1e8b7d6a5f4e3d2c1b0a9f8e7d6c5b4a39"),
    (find_api_keys, "a/very/long/path/to/some/file_name_2024.py"),
    (find_api_keys, "unzip MetFamily-master_14122023 first"),
    (find_api_keys, "set NDK_ALL_ABIS=arm64-v8a and APP_PLATFORM=android-26"),
    (find_api_keys, "device d2db5ec4-6e7a-11ee-b962-0242ac120002"),
    (find_api_keys, "load facebook/blenderbot-400m-distill"),
    (find_card_numbers, "order 503890547220 shipped"),
    (find_card_numbers, "a population of 13960000"),
    (find_id_numbers, "my passport expired"),
    (find_id_numbers, "the account number is missing"),
    (find_dates_of_birth, "the orchestra was founded in 1977"),
    (find_dates_of_birth, "the invoice is due on 2024-05-01"),
]


@pytest.mark.parametrize(("rule", "text", "value"), POSITIVES, ids=[f"{r.__name__}:{t}" for r, t, _ in POSITIVES])
def test_each_rule_finds_its_entity(rule, text, value):
    assert value in found(rule, text)


@pytest.mark.parametrize(("rule", "text"), NEGATIVES, ids=[f"{r.__name__}:{t}" for r, t in NEGATIVES])
def test_each_rule_leaves_near_misses_alone(rule, text):
    assert found(rule, text) == set()


@pytest.fixture(scope="module")
def find_names():
    import spacy

    return make_name_finder(_english_lexicon(spacy.load(resolve_spacy_model(None))))


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("my name is borna jerković", "borna jerković"),
        ("What's your last name? Arcuri", "Arcuri"),
        ("Mr. Kozłowski flew to Oslo", "Kozłowski"),
        ("I want to add Edvard Petrussen as a beneficiary", "Edvard Petrussen"),
        ("Shovda is very reliable.", "Shovda"),
        ("Why is Glyceria so impulsive?", "Glyceria"),
        ("I would like to remove my kid Mario from the will", "Mario"),
        ("Ella: What a wife.", "Ella"),
        ("leone mazzi\n\nnurse", "leone mazzi"),
    ],
)
def test_names_spacy_misses_are_found_after_cues(find_names, text, name):
    assert name in found(find_names, text)


@pytest.mark.parametrize(
    "text",
    [
        "How do I deploy on Ubuntu with Nginx?",  # single foreign words without a person cue are products
        "I'm tired of waiting",  # a lower-case English word after "I'm"
        "I'm migrating the database",  # an inflected English word
        "Answers: pick the wrong one",  # a label, not a speaker, when English (plural or not)
        "the Categories: list",
        "call me when the build is done",  # a function word after a cue
        "import numpy\nx = 1",  # a first line of code, not a signature
        "Note: the PyTorch version matters",  # inner capitals are products
    ],
)
def test_names_rule_leaves_products_and_english_alone(find_names, text):
    assert found(find_names, text) == set()


def test_names_propagate_to_repeats_and_lists():
    text = "Directed by Maciej Borkowski and starring Borkowski"
    assert [text[s.start : s.end] for s in propagate_names(text, [Span(12, 28, "PERSON")])] == [
        "Maciej Borkowski",
        "Borkowski",
    ]
    text = "our 3 founders: Kónya, Becker and Vasquez."
    spans = propagate_names(text, [Span(16, 21, "PERSON")])
    assert {text[s.start : s.end] for s in spans} == {"Kónya", "Becker", "Vasquez"}


def test_names_propagate_to_the_bare_form_of_a_possessive():
    text = "from Emmie Ström's Cautionary Tales. Better than early Ström?"
    spans = propagate_names(text, [Span(5, 18, "PERSON")])
    assert [text[s.start : s.end] for s in spans] == ["Emmie Ström's", "Ström"]


def test_the_census_gazetteer_is_loaded_once_and_folded():
    gazetteer = name_gazetteer()
    assert gazetteer is name_gazetteer()
    assert isinstance(gazetteer.first_names, frozenset) and len(gazetteer.first_names) > 5000
    assert {"scott", "celina", "destiny"} <= gazetteer.first_names
    assert {"kastner", "dias", "strom"} <= gazetteer.surnames
    assert "python" not in gazetteer.first_names | gazetteer.surnames
    assert fold("Ström") == "strom" and fold("Bártová") == "bartova" and fold("Ana") == "ana"


@pytest.fixture(scope="module")
def find_census_names():
    import spacy

    nlp = spacy.load(resolve_spacy_model(None))
    return make_gazetteer_name_finder(_english_lexicon(nlp), _english_lexicon(nlp, ("verb", "adj", "adv")))


def test_wordnet_nouns_that_are_names_are_not_common_words():
    import spacy

    common = _english_lexicon(spacy.load(resolve_spacy_model(None)), ("verb", "adj", "adv"))
    assert {"will", "rose", "mark", "grant"} <= common
    assert not {"scott", "victoria", "fletcher"} & common


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("This song by ex-Zombie Kastner is a perfect example", {"Kastner"}),  # not English: alone
        ("Scott is a very sympathetic person.", {"Scott"}),  # English word + a person verb
        ("Jacob lives on 90 Whitchurch Road street.", {"Jacob"}),
        ("Destiny: Remember me, Maria?", {"Destiny"}),  # a speaker at the start of a line
        ("to leave me Victoria, four hungry children", {"Victoria"}),  # a WordNet-noun first name mid-sentence
        ("I'm so jealous! said Željko to Teresa", {"Teresa"}),  # "to" after a person verb
        ("I gave the keys to Victoria yesterday", {"Victoria"}),
        ("Billing address: Ana Dias\n    31401 ul. Słowicza 10", {"Ana Dias"}),  # first name + surname
        (">Fletcher Hill\n>Ussearch", {"Fletcher Hill"}),
        ("between him and Franciska's kid;", {"Franciska's"}),  # possessive + kin
        ("Sarah's car is red", {"Sarah's"}),  # a possessive WordNet-noun first name
        ("eva kleist lives at 255 hersnapvej 18", {"eva kleist"}),  # lower case needs a person verb
        ("the codey m ross version recorded", {"codey m ross"}),  # or a middle initial
        ('mika: "who are you?"', {"mika"}),
        ("they had 6: silvana, adam, christopher, kristina, chad and caleb.",
         {"silvana", "adam", "christopher", "kristina", "chad", "caleb"}),
        ("Best regards,\nFletcher", {"Fletcher"}),  # a signature after a closing
    ],
)
def test_census_names_are_found_without_other_cues(find_census_names, text, names):
    assert names <= found(find_census_names, text)


@pytest.mark.parametrize(
    "text",
    [
        "Will you help me with Python and Django?",  # a common word that is also a name, at a sentence start
        "Mark the file as done and Grant access to Bill Payment",  # common words leading pairs
        "Capitalized words like Wisdom and Discipline are often mistaken with names.",  # English surnames alone
        "Grace's period ends and Will's power grows",  # possessives of common words
        "The Princess Royal arrived this morning",  # a title after "the"
        "a new office in Virginia next June",  # places after "in", months
        "Plan a 5 day trip to Paris",  # after "to" without a person verb, a place
        "hope is very important",  # lower-case English first name
        "You said it",  # stop words are never names
        "the languages: python, java and rust",  # a list of things
        "the rose said nothing to anna",  # lower-case names need a cue
        "How do I deploy on Ubuntu with Nginx?",
        "class PyTorchModel: pass",
        "class Foo {\n  bar: string;\n}",  # a name code declares
        "Can you give me some Seaborn code for plotting",  # a census surname used for a product
    ],
)
def test_census_names_rule_leaves_common_words_and_things_alone(find_census_names, text):
    assert found(find_census_names, text) == set()


@pytest.fixture(scope="module")
def census_first_names() -> dict[str, list[str]]:
    """Census first names that are not English words, and those that are common English words (not stop words,
    which are never names)."""
    import spacy
    from spacy.lang.en.stop_words import STOP_WORDS

    nlp = spacy.load(resolve_spacy_model(None))
    lexicon, common = _english_lexicon(nlp), _english_lexicon(nlp, ("verb", "adj", "adv"))
    names = sorted(name for name in name_gazetteer().first_names if len(name) >= 3)
    return {
        "foreign": [name for name in names if name not in lexicon and name.isalpha()],
        "common": [name for name in names if name in common and name.isalpha() and name not in STOP_WORDS],
    }


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_foreign_census_first_name_is_found_and_common_words_need_a_cue(
    find_census_names, census_first_names, data
):
    foreign = data.draw(st.sampled_from(census_first_names["foreign"])).capitalize()
    common = data.draw(st.sampled_from(census_first_names["common"])).capitalize()
    text = f"{common} the report before noon. I think {foreign} wrote it."
    spans = found(find_census_names, text)
    assert foreign in spans
    assert common not in spans
    assert found(find_census_names, f"{common} is very kind") == {common}  # a person verb makes it a name


def test_entropy_separates_keys_from_words():
    assert shannon_entropy("aaaaaaaa") == 0
    assert shannon_entropy("9fK2xQ7LmP4vR8sT1wY6zB3nC5") > 4.0 > shannon_entropy("get_user_account_information")


span_lists = st.lists(
    st.tuples(st.integers(0, 40), st.integers(1, 15), st.sampled_from(["PERSON", "PHONE_NUMBER", "URL"]),
              st.floats(0, 1)),
    max_size=8,
)


@given(st.text(alphabet="ab \n", min_size=60, max_size=60), span_lists)
def test_merged_spans_are_disjoint_trimmed_and_cover_every_detection(text, raw):
    spans = [Span(start, min(start + length, len(text)), kind, score) for start, length, kind, score in raw]
    merged = merge_spans(text, spans)
    assert all(a.end <= b.start for a, b in zip(merged, merged[1:], strict=False))
    assert all(not text[s.start].isspace() and not text[s.end - 1].isspace() for s in merged)
    covered = {i for s in merged for i in range(s.start, s.end)}
    assert all(i in covered for s in spans for i in range(s.start, s.end) if not text[i].isspace())


@given(st.text(alphabet="ab \n", min_size=60, max_size=60), span_lists)
def test_replacing_merged_spans_removes_them_and_keeps_the_rest(text, raw):
    spans = merge_spans(text, [Span(s, min(s + n, len(text)), k, p) for s, n, k, p in raw])
    scrubbed = replace_spans(text, spans)
    assert scrubbed.count("<") == len(spans)
    kept = "".join(text[a.end : b.start] for a, b in zip([Span(0, 0, ""), *spans], [*spans, Span(len(text), 0, "")],
                                                       strict=True))
    assert "".join(part for part in _split_placeholders(scrubbed)) == kept


def _split_placeholders(text: str) -> list[str]:
    import re

    return re.split(r"<[A-Z_]+>", text)
