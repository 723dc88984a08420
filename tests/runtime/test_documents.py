"""A suite's documents: Markdown and text files read as passages, and every refusal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kaizen.runtime.routing import route_keys
from kaizen.runtime.suites import Passage, SuiteError, load_suite
from kaizen.runtime.suites.documents import read_document
from kaizen.runtime.suites.knowledge import Knowledge
from kaizen.runtime.suites.prose import faq, sentences
from tests.runtime.test_suites import HEADER, _configmap_mount, write_suite


def passages(tmp_path: Path, text: str, name: str = "doc.md") -> tuple[list[Passage], list[str]]:
    path = tmp_path / name
    path.write_text(text)
    return read_document(path, name, "alpha")


def texts(tmp_path: Path, text: str, name: str = "doc.md") -> list[str]:
    return [p.text for p in passages(tmp_path, text, name)[0]]


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        # A paragraph's lines are one text; emphasis, links and tags keep their words.
        (
            "Quarry is the **batch scheduler** of the\n[platform team](https://wiki/p).\n",
            ["Quarry is the batch scheduler of the platform team."],
        ),
        (
            "It runs on _ore_, not on ~~slate~~ or <b>shale</b>.\n",
            ["It runs on ore, not on slate or shale."],
        ),
        # snake_case and inline code are no emphasis; code keeps its backquotes.
        ("Set `max_retries` in job_spec.yaml", ["Set `max_retries` in job_spec.yaml."]),
        ("See ![diagram](d.png) the <https://wiki/q> page.", ["See the https://wiki/q page."]),
        # Blank lines part paragraphs: each is a passage.
        ("One line.\n\nTwo line.\n", ["One line.", "Two line."]),
        # Items that complete their lead-in are read as its sentences, with a full stop.
        (
            "Each job gets:\n\n- 512 MiB of memory\n- at most 4 CPUs\n  unless it asks\n",
            ["Each job gets 512 MiB of memory. Each job gets at most 4 CPUs unless it asks."],
        ),
        # Items that are sentences stand alone; the lead-in stays, with a full stop.
        (
            "Two rules hold:\n1. Jobs retry twice.\n2) Logs stay 30 days.\n",
            ["Two rules hold. Jobs retry twice. Logs stay 30 days."],
        ),
        # A lead-in that no list follows is a sentence of its own.
        ("The owner is:\n\nMira Dobos.\n", ["The owner is.", "Mira Dobos."]),
        # Block quotes are prose; rules part paragraphs.
        (
            "> Jobs that fail\n> are retried.\n\n---\nDone.",
            ["Jobs that fail are retried.", "Done."],
        ),
        # A quote's admonition label is no part of what it says.
        (
            "> Note: Osprey is the compliance scanner.\n\n> **Warning:** Loads stop at 04:00.\n"
            "\n> [!TIP]\n> Backfills run at weekends.\n",
            [
                "Osprey is the compliance scanner.",
                "Loads stop at 04:00.",
                "Backfills run at weekends.",
            ],
        ),
        # Outside a quote, such a word is the sentence's own.
        ("Note: the rota changes on Mondays.\n", ["Note: the rota changes on Mondays."]),
        # Nested items are items; a whole lead-in's items are sentences of their own.
        (
            "Limits:\n- memory\n    - 512 MiB by default\n",
            ["Limits. Memory. 512 MiB by default."],
        ),
        (
            "Deploys happen on Tuesdays:\n1. two engineers review it\n2. Cinder ships it\n",
            ["Deploys happen on Tuesdays. Two engineers review it. Cinder ships it."],
        ),
        # Items after a condition are read as its clauses.
        (
            "When errors pass 2 percent:\n- Heron pages the engineer\n- the gateway sheds load\n",
            [
                "When errors pass 2 percent, Heron pages the engineer. "
                "When errors pass 2 percent, the gateway sheds load."
            ],
        ),
    ],
)
def test_markdown_paragraphs_become_passage_text(
    tmp_path: Path, markdown: str, expected: list[str]
) -> None:
    assert texts(tmp_path, markdown) == expected


def test_headings_title_the_paragraphs_after_them_and_are_no_text(tmp_path: Path) -> None:
    found, left_out = passages(
        tmp_path,
        "Intro before any title.\n# Quarry\n\nQuarry schedules jobs.\n## Limits\n"
        "Jobs get 512 MiB.\n\nBilling\n=======\n\nBilling runs nightly.\n\nOwner\n-----\n"
        "Mira Dobos owns it.\n",
    )
    assert [(p.title, p.text, p.where) for p in found] == [
        (None, "Intro before any title.", "doc.md:1"),
        ("Quarry", "Quarry schedules jobs.", "doc.md:4"),
        ("Quarry", "Jobs get 512 MiB.", "doc.md:6"),
        ("Billing", "Billing runs nightly.", "doc.md:11"),
        ("Billing", "Mira Dobos owns it.", "doc.md:15"),
    ]
    assert left_out == []


def test_front_matter_titles_the_document_and_headings_do_not_replace_it(tmp_path: Path) -> None:
    found, left_out = passages(
        tmp_path, '---\ntitle: "Quarry"\nowner: platform\n---\n# Quarry runbook\n\nIt runs.\n'
    )
    assert [(p.title, p.text) for p in found] == [("Quarry", "It runs.")]
    assert left_out == ["doc.md:1: front matter"]


def test_code_tables_and_comments_are_left_out_and_each_is_reported(tmp_path: Path) -> None:
    found, left_out = passages(
        tmp_path,
        "Submit a job.\n\n```yaml\nmemory: 512Mi\n\nretries: 3\n```\n\n"
        "| key | value |\n|---|---|\n| a | b |\n\n    quarry submit\n    --wait\n\n"
        "Then wait. <!-- for the\nreviewers -->It finishes.\n\n````md\n```\nnot closed\n````\nEnd.\n",
    )
    assert [p.text for p in found] == ["Submit a job.", "Then wait. It finishes.", "End."]
    assert left_out == [
        "doc.md:3: a code block",
        "doc.md:9: a table",
        "doc.md:13: a code block",
        "doc.md:19: a code block",  # a fence of four closes only at four or more
    ]


def test_a_document_is_read_in_composed_form(tmp_path: Path) -> None:
    # "é" typed as "e" and a combining accent is the one letter, as in every suite file.
    found, _ = passages(tmp_path, "# Ore\n\nIt runs in Valle\u0301e.\n")
    assert found[0].text == "It runs in Vall\u00e9e."


def test_a_text_file_is_paragraphs_without_a_title(tmp_path: Path) -> None:
    found, _ = passages(tmp_path, "# not a heading\nline two\n\n- not an item\n", "notes.txt")
    assert [(p.title, p.text) for p in found] == [
        (None, "# not a heading line two."),
        (None, "- not an item."),
    ]


def test_a_text_files_first_line_alone_is_its_title(tmp_path: Path) -> None:
    found, _ = passages(
        tmp_path,
        "Lending policy of Mosswick Library\n\nLate items cost 20p a day.\n\nShort line\n",
        "policy.txt",
    )
    assert [(p.title, p.text) for p in found] == [
        ("Lending policy of Mosswick Library", "Late items cost 20p a day."),
        ("Lending policy of Mosswick Library", "Short line."),  # only the first can title
    ]
    # A first line that is a sentence, or a paragraph of several lines, titles nothing.
    assert (
        passages(tmp_path, "Loans last three weeks.\n\nRenew online.\n", "a.txt")[0][0].title
        is None
    )


def test_a_heading_that_asks_is_an_faq_question_read_with_its_answer(tmp_path: Path) -> None:
    found, _ = passages(
        tmp_path,
        "# Mosswick Library FAQ\n\n## How many books can I borrow?\n\nUp to 12 at a time.\n\n"
        "Children's cards allow 6.\n\n## Opening hours\n\nIt opens at 9am.\n\n"
        "## Is there parking?\n\n## Can I renew **online**?\n\nYes. Use the Fernleaf app.\n",
    )
    assert [p.text for p in found] == [
        "How many books can I borrow? Up to 12 at a time.",
        "Children's cards allow 6.",  # the answer's first paragraph holds the question
        "It opens at 9am.",  # a heading that states is no text, as before
        "Can I renew online? Yes. Use the Fernleaf app.",  # unanswered: no question
    ]
    assert {p.title for p in found} == {"Mosswick Library FAQ"}
    asked = [pair for passage in found for pair in faq(passage)]
    assert asked == [
        ("How many books can I borrow?", "Up to 12 at a time."),
        ("Can I renew online?", "Yes. Use the Fernleaf app."),
    ]
    # "Yes." is said, in the answer, but it is no sentence of its own, and no name.
    said = sentences(Knowledge(passages=tuple(found)))
    assert "Yes." not in [s.text for s in said]
    assert not any("Yes" in s.names for s in said)


def write_docs(tmp_path: Path, documents: str, files: dict[str, str | bytes]) -> Path:
    root = write_suite(tmp_path / "mini", header=HEADER + documents, train=False)
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return root


def test_a_suite_reads_its_documents_after_its_knowledge_file(tmp_path: Path) -> None:
    root = write_docs(
        tmp_path,
        "documents:\n  - {domain: alpha, path: docs}\n  - {domain: beta, path: faq.md}\n",
        {
            "docs/b.md": "# Quarry\n\nQuarry schedules jobs.\n\nJobs run on Ore.\n",
            "docs/a/first.txt": "Ore is a cluster in Lyon.\n\nJobs run on Ore.\n",
            "docs/.drafts/skip.md": "Not read.\n",
            "docs/image.png": "not a document",
            "faq.md": "# Access FAQ\n\nWho approves access? The Keyhole team.\n\nBeta is quiet.\n",
        },
    )
    (root / "knowledge.jsonl").write_text(
        json.dumps({"kind": "passage", "domain": "beta", "text": "Beta is quiet."}) + "\n"
    )
    suite = load_suite(str(root))
    assert [(p.domain, p.title, p.text, p.where) for p in suite.knowledge.passages] == [
        ("beta", None, "Beta is quiet.", "knowledge.jsonl:1"),
        ("alpha", None, "Ore is a cluster in Lyon.", "docs/a/first.txt:1"),
        ("alpha", None, "Jobs run on Ore.", "docs/a/first.txt:3"),
        ("alpha", "Quarry", "Quarry schedules jobs.", "docs/b.md:3"),
        # The same paragraph in another file of the domain is read once (docs/b.md:5), and
        # one knowledge.jsonl holds not again (faq.md:5).
        ("beta", "Access FAQ", "Who approves access? The Keyhole team.", "faq.md:3"),
    ]
    assert suite.left_out == {}
    # A document's names route its domain, as a knowledge file's do.
    keys = route_keys(suite.knowledge, ["alpha", "beta"])
    assert "Quarry" in keys["alpha"] and "Keyhole" in keys["beta"]


def test_documents_of_a_configmap_mounted_suite_are_read_once(tmp_path: Path) -> None:
    # A ConfigMap is a flat folder of symlinks into `..data`: a document is named by itself,
    # and a folder entry for the whole mount reads each document once, not the hidden copies.
    documents = "documents:\n  - {domain: alpha, path: ore.md}\n  - {domain: beta, path: .}\n"
    source = write_docs(
        tmp_path, documents, {"ore.md": "# Ore\n\nOre runs jobs.\n", "faq.txt": "Ask Keyhole.\n"}
    )
    mount = _configmap_mount(source, tmp_path / "mnt" / "suite")
    assert (mount / "ore.md").is_symlink()
    found = [(p.domain, p.text, p.where) for p in load_suite(str(mount)).knowledge.passages]
    assert found == [("alpha", "Ore runs jobs.", "ore.md:3"), ("beta", "Ask Keyhole.", "faq.txt:1")]


@pytest.mark.parametrize(
    ("documents", "files", "where", "problem"),
    [
        ("documents: docs\n", {}, "suite.yaml:8: documents", "must be a list"),
        ("documents:\n  - docs\n", {}, "suite.yaml:9: documents[0]", "must be a mapping"),
        (
            "documents:\n  - {domain: gamma, path: d.md}\n",
            {},
            "suite.yaml:9: documents[0].domain",
            "unknown domain 'gamma'",
        ),
        (
            "documents:\n  - {domain: alpha, path: d.md, kind: md}\n",
            {},
            "suite.yaml:9: documents[0].kind",
            "unknown field",
        ),
        (
            "documents:\n  - {domain: alpha, path: d.md}\n  - {domain: beta, path: ../x}\n",
            {"d.md": "Text."},
            "suite.yaml:10: documents[1].path",
            "inside it",
        ),
        (
            "documents:\n  - {domain: alpha, path: /etc/x.md}\n",
            {},
            "suite.yaml:9: documents[0].path",
            "must be relative",
        ),
        (
            "documents:\n  - {domain: alpha, path: gone.md}\n",
            {},
            "suite.yaml:9: documents[0].path",
            "no such file or folder",
        ),
        (
            "documents:\n  - {domain: alpha, path: docs}\n",
            {"docs/a.pdf": "x"},
            "suite.yaml:9: documents[0].path",
            "holds no document",
        ),
        (
            "documents:\n  - {domain: alpha, path: a.pdf}\n",
            {"a.pdf": "x"},
            "suite.yaml:9: documents[0].path",
            "is not a document",
        ),
        (
            "documents:\n  - {domain: alpha, path: d.md}\n",
            {"d.md": "Fine.\n\nCaf\xe9 au lait.\n".encode("latin-1")},
            "d.md:3",
            "not UTF-8",
        ),
        (
            "documents:\n  - {domain: alpha, path: d.md}\n",
            {"d.md": "# Title only\n\n```\ncode\n```\n"},
            "d.md",
            "no paragraph of text",
        ),
        # A paragraph that carries an evaluation question would teach the test.
        (
            "documents:\n  - {domain: alpha, path: d.md}\n",
            {"d.md": "# Notes\n\nFine.\n\nQ a1?\n"},
            "d.md:5",
            "repeats evaluation item 'a1'",
        ),
    ],
)
def test_bad_documents_name_file_line_and_field(
    tmp_path: Path, documents: str, files: dict[str, str | bytes], where: str, problem: str
) -> None:
    root = write_docs(tmp_path, documents, files)
    with pytest.raises(SuiteError) as error:
        load_suite(str(root))
    message = str(error.value)
    assert message.startswith(str(root / where.split(":")[0]))
    assert where in message and problem in message, message


def test_the_documented_example_loads(tmp_path: Path) -> None:
    doc = (Path(__file__).parents[2] / "docs" / "evaluation.md").read_text()
    section = doc.split("### Documents", 1)[1]
    header = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    markdown = section.split("~~~markdown\n", 1)[1].split("\n~~~\n", 1)[0]
    expected = section.split("```text\n", 1)[1].split("```", 1)[0]
    items = [
        {
            "id": "q1",
            "domain": "quarry",
            "capability": "factual_recall",
            "question": "Q?",
            "answer": "x",
        },
        {
            "id": "g1",
            "domain": "geography",
            "capability": "factual_recall",
            "question": "G?",
            "answer": "y",
        },
    ]
    root = write_suite(tmp_path / "doc", header=header, items=items, train=False)
    (root / "docs").mkdir()
    (root / "docs" / "quarry.md").write_text(markdown + "\n")
    (root / "faq").mkdir()
    (root / "faq" / "access.md").write_text("# Access FAQ\n\nWho approves access? The lead.\n")
    suite = load_suite(str(root))
    quarry = [p for p in suite.knowledge.passages if p.where.startswith("docs/")]
    assert {p.title for p in quarry} == {"Quarry"}
    assert "\n".join(p.text for p in quarry) + "\n" == expected
    assert suite.left_out == {
        "quarry": ("docs/quarry.md:1: front matter", "docs/quarry.md:17: a code block")
    }
