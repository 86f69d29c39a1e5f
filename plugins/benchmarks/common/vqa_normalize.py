"""The VQA/EvalAI answer cleaning that TextVQA's published scorer applies (the m4c evaluator).

Behaviour reproduced exactly, quirks included:

* the period rule is written as a look-ahead for the literal text ``<=`` followed by a digit
  (meant as a look-behind), so every period not followed by a digit is removed;
* the period substitution passes ``re.UNICODE`` (32) where ``count`` goes, so at most 32
  periods are removed (``limit_periods=False`` lifts that in ``fixed`` mode);
* the articles ``a``, ``an`` and ``the`` are dropped, so ``"the"`` and ``"a"`` both clean to the
  empty string and match each other;
* one contraction entry maps ``somebody'd`` to ``somebodyd`` (the reverse of the others).
"""

from __future__ import annotations

import re

_CONTRACTION_PAIRS = """
aint ain't | arent aren't | cant can't | couldve could've | couldnt couldn't |
couldn'tve couldn't've | couldnt've couldn't've | didnt didn't | doesnt doesn't | dont don't |
hadnt hadn't | hadnt've hadn't've | hadn'tve hadn't've | hasnt hasn't | havent haven't |
hed he'd | hed've he'd've | he'dve he'd've | hes he's | howd how'd | howll how'll | hows how's |
Id've I'd've | I'dve I'd've | Im I'm | Ive I've | isnt isn't | itd it'd | itd've it'd've |
it'dve it'd've | itll it'll | let's let's | maam ma'am | mightnt mightn't |
mightnt've mightn't've | mightn'tve mightn't've | mightve might've | mustnt mustn't |
mustve must've | neednt needn't | notve not've | oclock o'clock | oughtnt oughtn't |
ow's'at 'ow's'at | 'ows'at 'ow's'at | 'ow'sat 'ow's'at | shant shan't | shed've she'd've |
she'dve she'd've | she's she's | shouldve should've | shouldnt shouldn't |
shouldnt've shouldn't've | shouldn'tve shouldn't've | somebody'd somebodyd |
somebodyd've somebody'd've | somebody'dve somebody'd've | somebodyll somebody'll |
somebodys somebody's | someoned someone'd | someoned've someone'd've |
someone'dve someone'd've | someonell someone'll | someones someone's | somethingd something'd |
somethingd've something'd've | something'dve something'd've | somethingll something'll |
thats that's | thered there'd | thered've there'd've | there'dve there'd've | therere there're |
theres there's | theyd they'd | theyd've they'd've | they'dve they'd've | theyll they'll |
theyre they're | theyve they've | twas 'twas | wasnt wasn't | wed've we'd've | we'dve we'd've |
weve we've | werent weren't | whatll what'll | whatre what're | whats what's | whatve what've |
whens when's | whered where'd | wheres where's | whereve where've | whod who'd |
whod've who'd've | who'dve who'd've | wholl who'll | whos who's | whove who've | whyll why'll |
whyre why're | whys why's | wont won't | wouldve would've | wouldnt wouldn't |
wouldnt've wouldn't've | wouldn'tve wouldn't've | yall y'all | yall'll y'all'll |
y'allll y'all'll | yall'd've y'all'd've | y'alld've y'all'd've | y'all'dve y'all'd've |
youd you'd | youd've you'd've | you'dve you'd've | youll you'll | youre you're | youve you've
"""
CONTRACTIONS: dict[str, str] = dict(
    pair.split() for pair in _CONTRACTION_PAIRS.replace("\n", " ").split("|") if pair.strip()
)
NUMBERS = {
    "none": "0",
    "zero": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
    "ten": "10",
}
ARTICLES = frozenset({"a", "an", "the"})
PUNCTUATION = (
    ";",
    "/",
    "[",
    "]",
    '"',
    "{",
    "}",
    "(",
    ")",
    "=",
    "+",
    "\\",
    "_",
    "-",
    ">",
    "<",
    "@",
    "`",
    ",",
    "?",
    "!",
)
_PERIOD = re.compile(r"(?!<=\d)(\.)(?!\d)")
_DIGIT_COMMA_DIGIT = re.compile(r"(?<=\d)(\,)+(?=\d)")
_PUBLISHED_PERIOD_LIMIT = int(re.UNICODE)  # passed as ``count`` by the published code


def _punctuation(text: str, limit_periods: bool) -> str:
    out = text
    digit_comma = _DIGIT_COMMA_DIGIT.search(text) is not None
    for mark in PUNCTUATION:
        if mark + " " in text or " " + mark in text or digit_comma:
            out = out.replace(mark, "")
        else:
            out = out.replace(mark, " ")
    return _PERIOD.sub("", out, count=_PUBLISHED_PERIOD_LIMIT if limit_periods else 0)


def _digits_articles(text: str) -> str:
    words = []
    for word in text.lower().split():
        word = NUMBERS.get(word, word)
        if word not in ARTICLES:
            words.append(word)
    return " ".join(CONTRACTIONS.get(word, word) for word in words)


def normalize_answer(text: str, *, limit_periods: bool = True) -> str:
    """Clean an answer the way the published TextVQA scorer does."""
    text = text.lower().replace(",", "").replace("?", "").replace("'s", " 's").strip()
    text = text.replace("\n", " ").replace("\t", " ").strip()
    return _digits_articles(_punctuation(text, limit_periods))


def soft_scores(human_answers: list[str], *, limit_periods: bool = True) -> dict[str, float]:
    """Each distinct cleaned human answer's VQA soft score: the mean, over the 10 ways of
    leaving one annotator out, of min(1, matches among the other 9 / 3)."""
    cleaned = [normalize_answer(a, limit_periods=limit_periods) for a in human_answers]
    scores: dict[str, float] = {}
    for candidate in set(cleaned):
        agreeing = sum(1 for a in cleaned if a == candidate)
        total = 0.0
        for answer in cleaned:
            others = agreeing - (1 if answer == candidate else 0)
            total += min(1.0, others / 3.0)
        scores[candidate] = total / len(cleaned)
    return scores
