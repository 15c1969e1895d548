"""One subject vocabulary: the brief's reading and the panel's silhouette name the same kind for the same words."""

from __future__ import annotations

import pytest

from tools.brief import find_subject_kind, read_brief_settings
from tools.silhouettes import KINDS, subject_kind
from tools.subject_words import PRODUCT_KINDS, SUBJECT_WORDS, first_product_word, subject_hits


def test_every_word_names_one_kind_and_every_kind_can_be_drawn():
    words = [w for vocab in SUBJECT_WORDS.values() for w in vocab.split()]
    assert len(words) == len(set(words))
    assert set(SUBJECT_WORDS) | {"product"} == set(KINDS)
    assert set(PRODUCT_KINDS) <= set(SUBJECT_WORDS)


@pytest.mark.parametrize("words, kind", [
    ("wireless noise-cancelling headphones", "headphones"),
    ("a handmade ceramic coffee mug", "mug"),
    ("the Trailhead insulated bottle", "bottle"),
    ("保温杯", "bottle"),  # a thermos, not a cup
    ("手工马克杯", "mug"),  # 马克杯 holds 马 (horse): the mug is named first
    ("新款面霜", "cosmetics"),  # 面霜 holds 面 (noodles)
    ("a 16-inch laptop", "laptop"),
    ("The Atlas SUV", "vehicle"),
    ("a paper boat on a rainy street", "boat"),
])  # fmt: skip
def test_the_brief_and_the_drawing_agree(words, kind):
    assert find_subject_kind(words) == kind
    assert subject_kind(None, words, "medium") == kind


@pytest.mark.parametrize("words", [
    "The pack carries a 16-inch laptop",  # 'car' is not 'carries'
    "Our team picked the catalogue",  # nor 'tea' 'team', nor 'cat' 'catalogue'
    "many managers",  # nor 'man' 'many'
])  # fmt: skip
def test_latin_words_match_whole_words_not_prefixes(words):
    hits = subject_hits(words.lower())
    assert not {"vehicle", "food", "animal", "person"} & set(hits), hits


def test_plurals_match_and_the_product_word_is_kept_as_written():
    assert set(subject_hits("two sneakers and some watches")) == {"shoe", "watch"}
    assert first_product_word("a film for our new headphones, for tiktok") == "headphones"
    assert (
        read_brief_settings("A 15-second film for our new headphones for TikTok.").subject_kind
        == "headphones"
    )


def test_a_story_is_about_its_people_first():
    text = "A STRANGER offers the nurse a thermos"
    assert find_subject_kind(text) == "bottle"
    assert find_subject_kind(text, people_first=True) == "person"
