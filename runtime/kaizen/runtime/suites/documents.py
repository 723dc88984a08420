"""A suite's documents: Markdown and plain-text files read as passages of knowledge.

A team's knowledge is mostly written already: runbooks, wiki pages, FAQs, design notes. A
suite names them in suite.yaml instead of copying their paragraphs into knowledge.jsonl:

```yaml
documents:
  - {domain: quarry, path: docs/quarry}        # a folder: its .md, .markdown and .txt files
  - {domain: keyhole, path: docs/access-faq.md}
```

Each path is relative to the suite's folder and stays inside it; a folder is read with its
subfolders, files in name order. Every paragraph of a document becomes one passage
(`Passage`, as a `passage` line of knowledge.jsonl would be) titled with the document's title:
its front matter's `title:`, else its first level-1 heading, else none (a .txt file has
none). So the rules that read passages (`prose.py`) read a document's paragraphs as they read
any passage's, and the title is what a paragraph's nameless sentences are about.

What is read as prose and what is not (`read_document`):

- a paragraph's lines are joined with spaces; a list item is a sentence of its paragraph,
  given a full stop when it ends without one; one that finishes its lead-in's sentence is
  read with it ("Every request gets:" + "a timeout of 30 seconds" → "Every request gets a
  timeout of 30 seconds."), and so is one after a condition ("When the error rate passes 2
  percent:" + "Heron pages the engineer" → "When the error rate passes 2 percent, Heron pages
  the engineer."); a lead-in its items all repeat is no sentence of its own, and one they do
  not keeps its colon as a full stop;
- headings are no text (a section's heading rarely reads as a sentence: "## Limits"); a
  level-1 heading titles the paragraphs after it;
- emphasis and links keep their words (`**x**` → x, `[text](url)` → text); an image, an
  HTML tag or comment is dropped; inline code keeps its backquotes (`prose` reads a
  backquoted token as code, not as a name);
- block quotes are read as prose without their `>`;
- code blocks (fenced or indented), tables and front matter are not prose: they are left out,
  and each is reported with its file and line (`Reading.left_out`, by domain: `kaizen check`
  prints them and the domain's data card lists them as `unread`), never silently;
- a paragraph repeated word for word in the domain's documents is read once.

A file that is not UTF-8 fails at its line; a document with no paragraph of text fails, and
so does a path outside the suite, a missing one, a file of another kind named by itself, and
a folder with no document in it (`SuiteError`: file, line and field).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kaizen.runtime.contamination import ContaminationGuard
from kaizen.runtime.scoring import normalize
from kaizen.runtime.suites.knowledge import Passage, sentence_start
from kaizen.runtime.suites.prose import question
from kaizen.runtime.suites.records import Fields, SuiteError, utf8_lines

#: The key of suite.yaml that lists documents.
DOCUMENTS_KEY = "documents"
#: The kinds of file a document may be.
SUFFIXES = (".md", ".markdown", ".txt")
_MARKDOWN = (".md", ".markdown")
_ENTRY_FIELDS = {"domain", "path"}

_FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")
_HEADING = re.compile(r"^\s{0,3}(#{1,6})(?:\s+(.*?))?\s*#*\s*$")
_SETEXT = re.compile(r"^\s{0,3}(=+|-+)\s*$")
_RULE = re.compile(r"^\s{0,3}([-*_])(?:\s*\1){2,}\s*$")
_ITEM = re.compile(r"^\s*(?:[-*+]|\d{1,9}[.)])\s+(.*)$")
_QUOTE = re.compile(r"^\s{0,3}>\s?")
_TABLE = re.compile(r"^\s*\|")
#: An admonition's label opening a quote: "Note:", "Warning:", GitHub's "[!NOTE]".
_LABEL = re.compile(
    r"^(?:\[!(?:NOTE|TIP|IMPORTANT|WARNING|CAUTION)\]|(?:Note|Tip|Hint|Important|Warning|Caution"
    r"|Danger|Info):)\s*",
    re.IGNORECASE,
)
_TITLE = re.compile(r"^title:\s*(.+?)\s*$")
_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_REFERENCE_LINK = re.compile(r"\[([^\]]+)\]\[[^\]]*\]")
_AUTOLINK = re.compile(r"<((?:https?|mailto):[^>\s]+)>")
_TAG = re.compile(r"</?[A-Za-z][^>]*>")
_STRONG = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_EMPHASIS = re.compile(r"(?<![\w*])([*_])(?=\S)(.+?)(?<=\S)\1(?![\w*])")
_STRIKE = re.compile(r"~~(?=\S)(.+?)(?<=\S)~~")
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_END = (".", "!", "?", ":", ";", '"', "'", ")", "”", "’")


@dataclass(frozen=True)
class Source:
    """One entry of suite.yaml's `documents`: a file or folder of `domain`'s documents."""

    domain: str
    path: str
    line: int


@dataclass
class Reading:
    """What a suite's documents gave: their passages, and what was left out of them."""

    passages: list[Passage] = field(default_factory=list)
    left_out: dict[str, list[str]] = field(default_factory=dict)
    """Each domain's parts that are not prose, one line each: "docs/q.md:12: a code block"."""


def read_sources(
    path: Path,
    data: dict[str, Any],
    lines: dict[str, int],
    entries: Sequence[int],
    domains: Sequence[str],
) -> list[Source]:
    """suite.yaml's `documents` (`path`), checked: each entry a mapping of `domain` (one of
    `domains`) and a relative `path`; `entries` is each entry's line in the file."""
    value = data.get(DOCUMENTS_KEY)
    at = lines.get(DOCUMENTS_KEY, 1)
    if value is None:
        return []
    if not isinstance(value, list) or not value:
        raise SuiteError(
            path, at, DOCUMENTS_KEY, "must be a list of {domain: ..., path: ...} entries"
        )
    sources = []
    for index, entry in enumerate(value):
        line = entries[index] if index < len(entries) else at
        name = f"{DOCUMENTS_KEY}[{index}]"
        if not isinstance(entry, dict):
            raise SuiteError(path, line, name, "must be a mapping of domain and path")
        check = Fields(path, line, entry, _ENTRY_FIELDS, prefix=f"{name}.")
        domain = check.choice("domain", domains)
        relative = check.text("path")
        if Path(relative).is_absolute() or ".." in Path(relative).parts:
            check.fail("path", f"{relative!r} must be relative to the suite's folder, inside it")
        sources.append(Source(domain, relative, line))
    return sources


def read_documents(
    suite: Path, header: Path, sources: Sequence[Source], known: Sequence[Passage] = ()
) -> Reading:
    """The passages of every document `sources` name (in order, each file once, each
    domain's repeated paragraphs once, none that `known` passages already hold) and what was
    left out of them; `header` is suite.yaml, where a bad entry is reported."""
    reading = Reading()
    seen_files: set[Path] = set()
    seen_text = {(p.domain, normalize(p.text)) for p in known}
    for index, source in enumerate(sources):
        target = suite / source.path
        field_name = f"{DOCUMENTS_KEY}[{index}].path"
        if not target.exists():
            raise SuiteError(
                header,
                source.line,
                field_name,
                f"{source.path!r}: no such file or folder in the suite",
            )
        if target.is_dir():
            files = sorted(
                p for p in target.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES
            )
            files = [
                p
                for p in files
                if not any(part.startswith(".") for part in p.relative_to(target).parts)
            ]
            if not files:
                raise SuiteError(
                    header,
                    source.line,
                    field_name,
                    f"{source.path!r} holds no document ({', '.join(SUFFIXES)} files)",
                )
        else:
            if target.suffix.lower() not in SUFFIXES:
                raise SuiteError(
                    header,
                    source.line,
                    field_name,
                    f"{source.path!r} is not a document: a document is a {', '.join(SUFFIXES)} file",
                )
            files = [target]
        for file in files:
            if file.resolve() in seen_files:
                continue
            seen_files.add(file.resolve())
            shown = file.relative_to(suite).as_posix()
            passages, left_out = read_document(file, shown, source.domain)
            if left_out:
                reading.left_out.setdefault(source.domain, []).extend(left_out)
            for passage in passages:
                key = (passage.domain, normalize(passage.text))
                if key not in seen_text:
                    seen_text.add(key)
                    reading.passages.append(passage)
    return reading


def check_disjoint(suite: Path, passages: Sequence[Passage], guard: ContaminationGuard) -> None:
    """Refuse a document whose paragraph carries an evaluation item (it would teach the
    test), at the paragraph's file and line."""
    for passage in passages:
        reason = guard.check_text(passage.text)
        if reason:
            shown, line = passage.where.rsplit(":", 1)
            raise SuiteError(suite / shown, int(line), None, reason)


def read_document(path: Path, shown: str, domain: str) -> tuple[list[Passage], list[str]]:
    """The paragraphs of one document as passages of `domain` (`where`: `shown:line`), and a
    line for each part left out. Markdown by the file's suffix; a .txt file is paragraphs."""
    # In Unicode's composed form, as every suite file is read ("é" typed as "e" + accent).
    lines = [unicodedata.normalize("NFC", line) for line in utf8_lines(path, path.read_bytes())]
    markdown = path.suffix.lower() in _MARKDOWN
    reader = _Reader(shown, domain, markdown)
    reader.read(lines)
    if not reader.passages:
        raise SuiteError(path, None, None, "no paragraph of text to read")
    return reader.passages, reader.left_out


class _Reader:
    """One pass over a document's lines: each block of text becomes a passage."""

    def __init__(self, shown: str, domain: str, markdown: bool) -> None:
        self.shown, self.domain, self.markdown = shown, domain, markdown
        self.title: str | None = None
        self.fixed_title = False  # front matter's title: headings do not replace it
        self.passages: list[Passage] = []
        self.left_out: list[str] = []
        self.block: list[tuple[str, bool]] = []  # the paragraph's parts, and which are items
        self.pending: list[tuple[str, bool]] = []  # a paragraph waiting for its list
        self.start = 0  # the paragraph's first line
        self.first_is_item = False
        self.in_table = False
        self.in_code = False  # an indented code block
        self.question: str | None = None  # a heading's question, waiting for its answer
        self.first_lines = 0  # the lines of a text file's first paragraph

    def read(self, lines: list[str]) -> None:
        number = self._front_matter(lines) if self.markdown else 0
        fence: str | None = None
        comment = False
        while number < len(lines):
            line, number = lines[number], number + 1
            if not self.markdown:
                self._text(line, number)
                continue
            if fence is not None:
                if line.strip().startswith(fence):
                    fence = None
                continue
            if comment:
                if "-->" not in line:
                    continue
                comment, line = False, line.split("-->", 1)[1]
            line = _COMMENT.sub("", line)
            if "<!--" in line:
                comment, line = True, line.split("<!--", 1)[0]
            opened = _FENCE.match(line)
            if opened:
                self._close()
                fence = opened.group(1)  # closed by a run as long or longer
                self._leave(number, "a code block")
                continue
            self._markdown(line, number)
        self._close()

    def _front_matter(self, lines: list[str]) -> int:
        """Past a leading `---` … `---` block (read for its `title:`); the index after it."""
        if not lines or lines[0].strip() != "---":
            return 0
        for index in range(1, len(lines)):
            if lines[index].strip() in ("---", "..."):
                for meta in lines[1:index]:
                    found = _TITLE.match(meta)
                    if found:
                        self.title = found.group(1).strip().strip("\"'") or None
                self.fixed_title = self.title is not None
                self._leave(1, "front matter")
                return index + 1
        return 0

    def _markdown(self, line: str, number: int) -> None:
        if not line.strip():
            self._end()
            return
        item = _ITEM.match(line)
        indented = line.startswith(("    ", "\t"))
        if self.in_code and indented:
            return
        self.in_code = False
        if indented and not self.block and not item:
            self.in_code = True
            self._leave(number, "a code block")
            return
        heading = _HEADING.match(line)
        if heading:
            self._close()
            self.question = None
            asked = _inline(heading.group(2) or "")
            if len(heading.group(1)) == 1 and asked:
                self._titled(asked)
            elif question(asked):
                # "## How many books can I borrow?": an FAQ's question, read with its answer.
                self.question = asked
            return
        underline = _SETEXT.match(line)
        if underline and len(self.block) == 1 and not self.first_is_item:
            text, self.block = self.block[0][0], []
            if underline.group(1).startswith("="):
                self._titled(text)
            return
        if _RULE.match(line):
            self._close()
            return
        if _TABLE.match(line):
            if not self.in_table:
                self._close()
                self._leave(number, "a table")
                self.in_table = True
            return
        self.in_table = False
        quoted = _QUOTE.match(line) is not None
        line = _QUOTE.sub("", line)
        item = _ITEM.match(line)
        text = _inline(item.group(1) if item else line)
        # A quote's admonition label is no part of what it says ("> Note: Osprey is …").
        self._add(_LABEL.sub("", text) if quoted else text, number, new=item is not None)

    def _titled(self, heading: str) -> None:
        if not self.fixed_title:
            self.title = _inline(heading) or self.title

    def _text(self, line: str, number: int) -> None:
        if not line.strip():
            self._end()
        else:
            self.first_lines += self._opening()
            self._add(" ".join(line.split()), number, new=False)

    def _add(self, text: str, number: int, *, new: bool) -> None:
        if not self.block:
            if self.pending and not new:
                self._flush()  # a lead-in that no list followed stands alone
            if self.pending:
                self.block, self.pending = self.pending, []  # the list its lead-in announced
            else:
                self.start, self.first_is_item = number, new
        if not text:
            return
        if new or not self.block:
            self.block.append((text, new))
        else:  # a paragraph's next line, or a list item's
            self.block[-1] = (f"{self.block[-1][0]} {text}", self.block[-1][1])

    def _end(self) -> None:
        """The paragraph ends; a lead-in ("Each job gets:") waits for the list after it."""
        self.in_table = False
        if not self.block:
            return
        if not self.block[-1][1] and self.block[-1][0].endswith(":"):
            self.pending, self.block = self.block, []
            return
        self._flush()
        self.pending, self.block = self.block, []
        self._flush()

    def _close(self) -> None:
        """The paragraph ends, and a lead-in waits no longer (a heading, a code block)."""
        self._end()
        self._flush()

    def _flush(self) -> None:
        """The pending paragraph as a passage, each list item read with its lead-in
        (`_with_lead_in`); a lead-in that its items all repeat is no sentence of its own."""
        title = self._opening() and not self.markdown and self.first_lines == 1 and self.pending
        if title and _title_line(self.pending[0][0]):  # "Lending policy of Mosswick Library"
            self.title, self.pending = self.pending[0][0], []
            return
        parts: list[str] = []
        lead: tuple[int, str] | None = None  # the lead-in's place among the parts, its words
        for text, item in self.pending:
            if item and lead is not None:
                joined = _with_lead_in(lead[1], text)
                if joined is not None:
                    parts[lead[0]] = ""  # said by its items
                parts.append(_sentence(joined or sentence_start(text)))
            else:
                lead = (len(parts), text[:-1].rstrip()) if text.endswith(":") and not item else None
                parts.append(_sentence(text))
        self.pending = []
        text = " ".join(part for part in parts if part)
        if text and self.question is not None:
            text, self.question = f"{self.question} {text}", None
        if text:
            self.passages.append(
                Passage(self.domain, text, self.title, f"{self.shown}:{self.start}")
            )

    def _opening(self) -> bool:
        """Whether no paragraph has been read yet, nor a title (a text file's first line
        may be its title)."""
        return not self.passages and self.title is None

    def _leave(self, number: int, what: str) -> None:
        self.left_out.append(f"{self.shown}:{number}: {what}")


def _title_line(text: str) -> bool:
    """Whether a text file's first line, a paragraph of its own, is its title: at most twelve
    words, opening with a capital and ending with no stop ("Lending policy of Mosswick
    Library")."""
    words = text.split()
    return 0 < len(words) <= 12 and text[0].isupper() and text[-1] not in ".!?:;,\"'”’)"


def _inline(text: str) -> str:
    """Markdown's inline marks off `text`, its words kept (code spans keep their backquotes)."""
    text = _IMAGE.sub("", text)
    text = _LINK.sub(r"\1", text)
    text = _REFERENCE_LINK.sub(r"\1", text)
    text = _AUTOLINK.sub(r"\1", text)
    text = _TAG.sub("", text)
    text = _STRIKE.sub(r"\1", text)
    text = _STRONG.sub(r"\2", text)
    text = _EMPHASIS.sub(r"\2", text)
    return " ".join(text.split())


#: A lead-in that opens with one of these is a condition its items complete as clauses: "When
#: the error rate passes 2 percent:" + "Heron pages the engineer".
_CONDITIONS = ("when", "whenever", "if", "once", "before", "after", "unless", "while", "until")
#: A lead-in that ends with one of these is a sentence its items finish: "Every request gets:"
#: + "a timeout of 30 seconds". One that ends otherwise is whole ("Deploys happen on
#: Tuesdays:"), and its items are sentences of their own ("two engineers review the change").
_OPEN_ENDS = frozenset(
    [
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "has",
        "have",
        "had",
        "get",
        "gets",
        "got",
        "include",
        "includes",
        "including",
        "contain",
        "contains",
        "support",
        "supports",
        "need",
        "needs",
        "require",
        "requires",
        "take",
        "takes",
        "use",
        "uses",
        "offer",
        "offers",
        "provide",
        "provides",
        "allow",
        "allows",
        "cover",
        "covers",
        "mean",
        "means",
        "become",
        "becomes",
        "the",
        "a",
        "an",
        "of",
        "to",
        "for",
        "with",
        "by",
        "from",
        "in",
        "on",
        "at",
        "into",
        "as",
        "like",
        "than",
        "between",
        "about",
        "via",
        "per",
    ]
)
#: Openings a clause after a condition's comma writes in lower case ("…, the gateway sheds").
_LOWERED = frozenset(
    ["the", "a", "an", "it", "its", "this", "these", "those", "each", "every", "all", "some"]
)


def _with_lead_in(lead: str, item: str) -> str | None:
    """A list item read with its lead-in, or None where the item stands alone: after a
    condition, "<condition>, <item>"; after a lead-in that ends open, "<lead-in> <item>" for an
    item that opens with a lower-case word or a number ("at most 4 CPUs")."""
    words = lead.split()
    if not words:
        return None
    if words[0].lower() in _CONDITIONS:
        first, _, rest = item.partition(" ")
        opening = first.lower() if first.lower() in _LOWERED else first
        return f"{lead}, {opening} {rest}".rstrip()
    if words[-1].lower() in _OPEN_ENDS and (item[:1].islower() or item[:1].isdigit()):
        return f"{lead} {item}"
    return None


def _sentence(text: str) -> str:
    """A paragraph's part as a sentence: a closing colon becomes a full stop, and a part
    that ends without a stop gets one."""
    text = text.strip()
    if text.endswith(":"):
        return text[:-1].rstrip() + "."
    if not text.endswith(_END):
        return text + "."
    return text
