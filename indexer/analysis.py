"""Analysis: text -> words -> terms, the same way for documents and queries.

A word is a Unicode `\\w+` run of the NFKC-normalized, lower-cased text; a term is what a word
becomes after case folding, the length limit, stopword removal and stemming. Workers
apply `Analyzer.term` once per distinct word, so its cost does not grow with the corpus.
The analyzer's settings are plain data (`AnalyzerConfig`) saved in every index.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

from indexer.errors import IndexerError

WORD_RE = re.compile(r"\w+")
# A text may be cut before any of these characters and its pieces analyzed one by one: they are
# not `\w` (no word spans the cut), NFKC never joins them to what precedes, and they are neither
# cased nor case-ignorable, so lower-casing a final sigma before the cut sees the same context.
# (ASCII but for `'.:^` and backtick, which are case-ignorable; and the ideographic space,
# comma and full stop, so that text without ASCII can be cut too.)
_CUT_BEFORE = r"[\x00-\x26\x28-\x2d\x2f\x3b-\x40\x5b-\x5d\x7b-\x7f\u3000-\u3002]"
_LAST_CUT = re.compile(rf"(?s:.*)({_CUT_BEFORE})")
_NEXT_CUT = re.compile(_CUT_BEFORE)
MAX_TERM_CHARS_DEFAULT = 64
CACHE_WORDS = 2_000_000  # the word -> term cache is cleared when it grows past this

# A compact English stopword list (articles, pronouns, auxiliaries, prepositions, conjunctions).
ENGLISH_STOPWORDS = frozenset(
    """
    a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further
    had has have having he her here hers herself him himself his how i if in into is it its
    itself just me more most my myself no nor not now of off on once only or other our ours
    ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself yourselves
    """.split()
)


@dataclass(frozen=True)
class AnalyzerConfig:
    """The analyzer's settings, as saved in the index header.

    stem: "none" or a Snowball language name ("english", "french", ...).
    stopwords: the sorted stopword list ("english" and FILE are resolved to words at build time).
    """

    stem: str = "english"
    stopwords: tuple[str, ...] = ()
    normalize: bool = True
    max_term_chars: int = MAX_TERM_CHARS_DEFAULT

    def to_dict(self) -> dict:
        return {**asdict(self), "stopwords": list(self.stopwords)}

    @classmethod
    def from_dict(cls, data: dict) -> AnalyzerConfig:
        return cls(
            stem=str(data["stem"]),
            stopwords=tuple(data["stopwords"]),
            normalize=bool(data["normalize"]),
            max_term_chars=int(data["max_term_chars"]),
        )


def resolve_stopwords(spec: str | Path | None) -> tuple[str, ...]:
    """Turn `none`, `english` or a file of words (one per line, `#` comments) into a sorted tuple.

    Raises IndexerError when the file cannot be read.
    """
    if spec is None or str(spec) == "none":
        return ()
    if str(spec) == "english":
        return tuple(sorted(ENGLISH_STOPWORDS))
    path = Path(spec)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise IndexerError(
            f"{path}: cannot read stopword file ({err}); give 'none', 'english' or a UTF-8 file"
        ) from None
    words = {w for line in lines for w in WORD_RE.findall(line.split("#", 1)[0].lower())}
    return tuple(sorted(words))


def check_stemmer(language: str) -> None:
    """Raise IndexerError unless `language` is "none" or a stemmer PyStemmer has."""
    if language != "none":
        _stemmer(language)


@lru_cache(maxsize=16)
def _stemmer(language: str):
    import Stemmer  # PyStemmer: C Snowball stemmers

    try:
        stemmer = Stemmer.Stemmer(language)
    except KeyError:
        choices = ", ".join(sorted(Stemmer.algorithms()))
        raise IndexerError(f"unknown stemmer language {language!r}; choose none or one of: {choices}") from None
    # Every caller keeps its own word -> term cache (an Analyzer, a worker's vocabulary), so each
    # word reaches the stemmer about once: PyStemmer's own cache only costs (stemWords of 200k
    # distinct words: 0.25 s with its default 10,000-word cache, 0.09 s without).
    stemmer.maxCacheSize = 0
    return stemmer


class Analyzer:
    """Turns text into terms. Picklable; build one per process from its config."""

    def __init__(self, config: AnalyzerConfig | None = None):
        self.config = config or AnalyzerConfig()
        self._stopwords = frozenset(self.config.stopwords)
        self._stemmer = None if self.config.stem == "none" else _stemmer(self.config.stem)
        self._stem = None if self._stemmer is None else self._stemmer.stemWord
        self._cache: dict[str, str] = {}  # word -> term, "" when not indexed

    def __getstate__(self):
        return self.config

    def __setstate__(self, config):
        self.__init__(config)

    def normalized(self, text: str) -> str:
        """`text` as words are cut from it: NFKC-normalized first (when the analyzer normalizes),
        so that a letter written decomposed (`e` + U+0301) stays inside its word."""
        if self.config.normalize and not text.isascii() and not unicodedata.is_normalized("NFKC", text):
            return unicodedata.normalize("NFKC", text)
        return text

    def prepared(self, text: str) -> str:
        """`text` as words are cut from it: normalized, then lower-cased."""
        return self.normalized(text).lower()

    def pieces(self, blocks: Iterable[str], size: int) -> Iterator[str]:
        """The prepared text of a document given in `blocks`, in pieces of about `size`
        characters (or fewer) cut where analyzing the pieces one by one gives the words of the
        whole: no word is split, and normalizing and lower-casing see what they would have seen.
        A stretch of `size` characters with no such place (no space, no punctuation) stays whole."""
        carry = ""
        for block in blocks:
            text = carry + block if carry else block
            start = 0
            while len(text) - start > size:
                found = _LAST_CUT.match(text, start + 1, start + size)
                if found is None:
                    found = _NEXT_CUT.search(text, start + size)
                    if found is None:
                        break
                    cut = found.start()
                else:
                    cut = found.start(1)
                yield self.prepared(text[start:cut])
                start = cut
            carry = text[start:] if start else text
        if carry:
            yield self.prepared(carry)

    def words(self, text: str) -> list[str]:
        """The words of `text`: lower-cased `\\w+` runs of the normalized text, one per token position."""
        return WORD_RE.findall(self.normalized(text).lower())

    def term(self, word: str) -> str | None:
        """The index term for one word, or None when the word is not indexed (stopword, too long)."""
        term = self._cache.get(word)
        if term is None:
            term = self._analyze(word)
        return term or None

    def term_list(self, words: list[str]) -> list[str]:
        """The terms of many distinct words at once; "" marks a word that is not indexed."""
        found = list(map(self._cache.get, words))  # the common case: all cached, no Python loop
        for i in [i for i, t in enumerate(found) if t is None]:
            found[i] = self._analyze(words[i])
        return found

    def analyze_words(self, words: list[str]) -> list[str]:
        """The terms of many distinct words, "" for a word that is not indexed, with nothing
        cached: a worker keeps its own vocabulary and analyzes each new word once."""
        if self.config.normalize:
            others = [i for i, w in enumerate(words) if not w.isascii()]
            if others:  # one call for all: "\n" is in no word, and NFKC and case folding keep it
                joined = unicodedata.normalize("NFKC", "\n".join([words[i] for i in others])).casefold()
                words = list(words)
                for i, term in zip(others, joined.split("\n")):
                    words[i] = term
        longest, stopwords = self.config.max_term_chars, self._stopwords
        terms = ["" if len(t) > longest or t in stopwords else t for t in words]
        return terms if self._stemmer is None else self._stemmer.stemWords(terms)

    def _analyze(self, word: str) -> str:
        term = word
        if self.config.normalize and not word.isascii():
            term = unicodedata.normalize("NFKC", word).casefold()
        if len(term) > self.config.max_term_chars or term in self._stopwords:
            term = ""
        elif self._stem is not None:
            term = self._stem(term)
        if len(self._cache) > CACHE_WORDS:
            self._cache.clear()
        self._cache[word] = term
        return term

    def terms(self, text: str) -> list[str]:
        """The terms of `text` in order, unindexed words dropped (queries, tests, snippets)."""
        return [t for t in map(self.term, self.words(text)) if t is not None]

    def positioned_terms(self, text: str) -> list[tuple[int, str]]:
        """(position, term) for each indexed word of `text`; positions count every word, so a
        dropped stopword leaves a gap of known size, as it does in the index."""
        return [(i, t) for i, t in enumerate(map(self.term, self.words(text))) if t is not None]
