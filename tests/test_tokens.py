"""The worker's fast path agrees with the analyzer's definition: word spans found in numpy are
`re`'s `\\w+` runs, distinct words get distinct hashes, the vocabulary numbers every token as
Analyzer.term would, and a text analyzed in pieces gives the words of the whole."""

from __future__ import annotations

import random

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from indexer.analysis import WORD_RE, Analyzer, AnalyzerConfig
from indexer.indexing.hashing import PAD, padded, span_hashes
from indexer.indexing.tokens import word_spans
from indexer.indexing.vocabulary import NOT_INDEXED, Vocabulary

# ASCII, Latin, Greek (final sigma), CJK, digits of other scripts, combining marks, a lone
# surrogate (JSON can give one), punctuation that is not \w and ideographic punctuation
ALPHABET = "aZ_9 .,:'\n\t-éßΣσİ中文①٣\u0301\u200d\ud800\u3002\U0001d400😀ﬁ"


def _spans(text: str) -> list[str]:
    data = b" ".join([b"", text.encode("utf-8", "surrogatepass"), bytes(PAD)])
    a = np.frombuffer(data, dtype=np.uint8)
    starts, ends = word_spans(a, len(data) - PAD, text.isascii())
    return [data[s:e].decode("utf-8") for s, e in zip(starts.tolist(), ends.tolist())]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=ALPHABET, max_size=80))
def test_word_spans_are_the_words_re_finds(text):
    assert _spans(text) == WORD_RE.findall(text)


def test_every_code_point_is_classified_as_re_does():
    chars = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000)
    text = " ".join(chars[i : i + 7] for i in range(0, len(chars), 7))
    assert _spans(text) == WORD_RE.findall(text)


def test_distinct_words_get_distinct_hashes():
    rng = random.Random(4)
    words = {"hailthour", "nailthout", "kiorthail", "siorthait", "a", "b" * 64}
    words |= {"".join(rng.choice("ab") for _ in range(rng.randint(1, 64))) for _ in range(100_000)}
    words |= {"".join(rng.choice("qwertyé中") for _ in range(rng.randint(1, 20))) for _ in range(50_000)}
    encoded = [w.encode("utf-8") for w in words if len(w.encode("utf-8")) <= 64]
    lengths = np.array([len(w) for w in encoded])
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    hashes = span_hashes(padded(b"".join(encoded)), starts, lengths)
    assert len(np.unique(hashes)) == len(encoded) and hashes.all()


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.text(alphabet=ALPHABET, max_size=40), min_size=1, max_size=6),
    st.sampled_from(["none", "english"]),
    st.integers(min_value=1, max_value=80),
)
def test_the_vocabulary_numbers_tokens_as_the_analyzer_names_them(texts, stem, longest):
    config = AnalyzerConfig(stem=stem, stopwords=("a", "the"), max_term_chars=longest)
    analyzer = Analyzer(config)
    vocabulary = Vocabulary(Analyzer(config), max_words=10)
    for text in [*texts, "x" * 70 + " the " + "é" * 40, *texts]:  # again: words met before
        prepared = analyzer.prepared(text)
        data = b" ".join([b"", prepared.encode("utf-8", "surrogatepass"), bytes(PAD)])
        a = np.frombuffer(data, dtype=np.uint8)
        starts, ends = word_spans(a, len(data) - PAD, prepared.isascii())
        numbers = vocabulary.term_numbers(data, a, starts, ends).tolist()
        got = [None if n == NOT_INDEXED else vocabulary.terms[n].decode("utf-8") for n in numbers]
        assert got == [analyzer.term(w) for w in analyzer.words(text)]


def test_the_byte_order_of_terms_follows_new_terms():
    vocabulary = Vocabulary(Analyzer(AnalyzerConfig(stem="none")), max_words=10**6)
    rng = random.Random(2)
    for _ in range(30):  # some batches add many terms (merged), some few (bisected)
        words = " ".join(
            "".join(rng.choice("abcé") for _ in range(rng.randint(1, 6))) for _ in range(rng.choice([3, 400]))
        )
        data = b" ".join([b"", words.encode("utf-8"), bytes(PAD)])
        a = np.frombuffer(data, dtype=np.uint8)
        vocabulary.term_numbers(data, a, *word_spans(a, len(data) - PAD, False))
        used = np.arange(0, len(vocabulary.terms), 3)
        numbers, terms = vocabulary.in_byte_order(used)
        assert terms == [vocabulary.terms[i] for i in numbers] == sorted(vocabulary.terms[i] for i in used)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=ALPHABET + "Σ" * 3, max_size=60), st.integers(1, 12), st.randoms(use_true_random=False))
def test_a_text_analyzed_in_pieces_gives_the_words_of_the_whole(text, size, rng):
    analyzer = Analyzer(AnalyzerConfig(stem="none"))
    cuts = sorted(rng.sample(range(len(text) + 1), min(len(text) + 1, rng.randint(0, 5))))
    blocks = [text[x:y] for x, y in zip([0, *cuts], [*cuts, len(text)])]
    pieces = list(analyzer.pieces(blocks, size))
    assert [w for piece in pieces for w in WORD_RE.findall(piece)] == analyzer.words(text)
