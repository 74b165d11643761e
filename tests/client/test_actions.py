"""GitHub Actions glue: inputs, workflow commands, $GITHUB_OUTPUT, the job summary, escaping.

Workflow commands are read back the way the runner reads them, outputs the way
the runner parses the heredoc form, and the summary is rendered by a real
Markdown renderer (markdown-it, CommonMark + tables + raw HTML like GitHub).
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from batch_metrics.client.actions import (
    INPUT_DEFAULTS,
    MAX_ANNOTATIONS,
    Reporter,
    escape_data,
    escape_property,
    raw_input,
    read_inputs,
    write_outputs,
)
from batch_metrics.client.collect import CollectWarning
from batch_metrics.client.summary import SUMMARY_LIMIT, md, render_summary, write_summary
from batch_metrics.models import BatchPayload, RecipeResult
from tests.conftest import parse_outputs

TOKEN = "tok-9c1e-never-print-me"
HOSTILE = (
    "evil::warning::pwned %0A %25 | col | <script>alert(1)</script> [x](javascript:alert(1)) "
    "![img](https://x.invalid/a.png) `tick` **bold** @someone # head\r\n::error::line2\rcr"
)
ACTIONS = {"GITHUB_ACTIONS": "true"}


# --- helpers that read what we write the way GitHub does ---------------------------------------


def parse_command(line: str) -> tuple[str, dict[str, str], str]:
    """A workflow command line as the runner parses it: `::name k=v,k=v::message`, then unescaped."""
    match = re.fullmatch(r"::([a-z-]+)(?: ([^:]*))?::(.*)", line)
    assert match, f"not a workflow command: {line!r}"
    name, raw_properties, message = match.groups()

    def unescape(text: str) -> str:
        for escaped, plain in (("%0D", "\r"), ("%0A", "\n"), ("%3A", ":"), ("%2C", ","), ("%25", "%")):
            text = text.replace(escaped, plain)
        return text

    properties = dict(item.split("=", 1) for item in raw_properties.split(",")) if raw_properties else {}
    return name, {key: unescape(value) for key, value in properties.items()}, unescape(message)


def render(markdown: str) -> str:
    html: str = MarkdownIt("commonmark", {"html": True}).enable("table").render(markdown)
    return html


def reporter(env: dict[str, str]) -> tuple[Reporter, io.StringIO, io.StringIO]:
    out, err = io.StringIO(), io.StringIO()
    return Reporter(env, out=out, err=err), out, err


def hostile_payload() -> BatchPayload:
    rows = [
        RecipeResult(
            recipe_name=HOSTILE,
            ecosystem=HOSTILE,
            result="failed",
            error_category=HOSTILE,
            error_message=HOSTILE,
            platform=HOSTILE,
        ),
        RecipeResult(recipe_name="ok", ecosystem="npm", result="passed", platform="linux-x86_64"),
    ]
    return BatchPayload(
        batch_id=HOSTILE,
        ecosystem=HOSTILE,
        started_at="2026-02-19T14:31:25Z",
        total_recipes=2,
        passed=1,
        failed=1,
        success_rate=0.5,
        results=rows,
    )


# --- inputs ---------------------------------------------------------------------------------------


def test_inputs_are_read_with_hyphens_or_underscores() -> None:
    docker = {"INPUT_BATCH-ID": "from-docker", "INPUT_DRY-RUN": "true", "INPUT_PAYLOAD-PATH": "out/p.json"}
    composite = {
        "INPUT_BATCH_ID": "from-composite",
        "INPUT_DRY_RUN": "true",
        "INPUT_PAYLOAD_PATH": "out/p.json",
    }
    for env, batch_id in ((docker, "from-docker"), (composite, "from-composite")):
        inputs, problems = read_inputs(env)
        assert (inputs.batch_id, inputs.dry_run, inputs.payload_path, problems) == (
            batch_id,
            True,
            "out/p.json",
            [],
        )
    # The Docker spelling is the one the runner itself sets, so it wins when both are present.
    assert raw_input({**docker, **composite}, "batch-id") == "from-docker"


def test_defaults_apply_to_missing_and_blank_inputs() -> None:
    inputs, problems = read_inputs({"INPUT_TIMEOUT": "  ", "INPUT_FORMAT": ""})
    assert problems == []
    assert (inputs.timeout, inputs.retries, inputs.format, inputs.summary, inputs.fail_on_error) == (
        30.0,
        3,
        "auto",
        True,
        False,
    )
    assert (inputs.endpoint, inputs.ecosystem, inputs.batch_id, inputs.started_at) == ("", None, None, None)
    assert inputs.payload_path == INPUT_DEFAULTS["payload-path"]


def test_results_keep_their_lines_and_other_values_are_trimmed() -> None:
    inputs, _ = read_inputs(
        {"INPUT_RESULTS": "a/*.json\n  !a/skip.json\n", "INPUT_ENDPOINT": " https://x.dev \n"}
    )
    assert inputs.results == "a/*.json\n  !a/skip.json\n"
    assert inputs.endpoint == "https://x.dev"


@pytest.mark.parametrize(
    ("value", "expected"), [("true", True), ("True", True), ("TRUE", True), (" false ", False)]
)
def test_booleans_like_the_actions_toolkit(value: str, expected: bool) -> None:
    inputs, problems = read_inputs({"INPUT_FAIL-ON-ERROR": value, "INPUT_SUMMARY": value})
    assert (inputs.fail_on_error, inputs.summary, problems) == (expected, expected, [])


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"INPUT_DRY-RUN": "yes"}, "input dry-run: 'yes' is not true or false; using false"),
        ({"INPUT_SUMMARY": "tRuE"}, "input summary: 'tRuE' is not true or false; using true"),
        ({"INPUT_TIMEOUT": "soon"}, "input timeout: 'soon' is not a number from 0.1 to 3600; using 30"),
        ({"INPUT_TIMEOUT": "0"}, "input timeout: '0' is not a number from 0.1 to 3600; using 30"),
        ({"INPUT_TIMEOUT": "nan"}, "input timeout: 'nan' is not a number from 0.1 to 3600; using 30"),
        ({"INPUT_RETRIES": "-1"}, "input retries: '-1' is not a number from 0 to 20; using 3"),
        ({"INPUT_RETRIES": "2.5"}, "input retries: '2.5' is not a whole number; using 2"),
        ({"INPUT_FORMAT": "xml"}, "input format: 'xml' is not auto or one of payload, validation-results, "),
    ],
)
def test_bad_inputs_are_problems_not_crashes(env: dict[str, str], message: str) -> None:
    inputs, problems = read_inputs(env)
    [problem] = problems
    assert problem.startswith(message)
    assert (inputs.format, inputs.retries) in {("auto", 3), ("auto", 2)}


def test_overrides_win_over_the_environment() -> None:
    inputs, problems = read_inputs(
        {"INPUT_ENDPOINT": "https://a.dev", "INPUT_RETRIES": "5"},
        {"endpoint": "https://b.dev", "format": "JUnit"},
    )
    assert (inputs.endpoint, inputs.retries, inputs.format, problems) == ("https://b.dev", 5, "junit", [])


# --- workflow commands ----------------------------------------------------------------------------


def test_escaping_follows_the_runner_rules() -> None:
    assert escape_data("50% done\r\nnext") == "50%25 done%0D%0Anext"
    assert escape_data("%0A stays literal") == "%250A stays literal"
    assert escape_property("dir,a:b%\n.json") == "dir%2Ca%3Ab%25%0A.json"


def test_mask_comes_first_and_secrets_are_redacted_everywhere() -> None:
    report, out, err = reporter(ACTIONS)
    report.mask(TOKEN)
    report.mask(TOKEN)
    report.info(f"sending with {TOKEN}")
    report.warning(f"server said {TOKEN}", file=f"dir/{TOKEN}.json", line=3)
    lines = out.getvalue().splitlines()
    assert lines[0] == f"::add-mask::{TOKEN}"
    assert TOKEN not in "\n".join(lines[1:]) + err.getvalue()
    assert lines[1:] == ["sending with ***", "::warning file=dir/***.json,line=3::server said ***"]


def test_a_multiline_secret_masks_every_line() -> None:
    report, out, _ = reporter(ACTIONS)
    report.mask("first-line\nsecond-line\n")
    assert set(out.getvalue().splitlines()) == {
        "::add-mask::first-line%0Asecond-line",
        "::add-mask::first-line",
        "::add-mask::second-line",
    }


def test_hostile_text_stays_inside_one_warning() -> None:
    report, out, _ = reporter(ACTIONS)
    report.warning(HOSTILE, file=f"results/{HOSTILE}.json", line=7)
    report.info(HOSTILE)
    warning_line, info_line = out.getvalue().splitlines()
    name, properties, message = parse_command(warning_line)
    assert (name, properties, message) == (
        "warning",
        {"file": f"results/{HOSTILE}.json", "line": "7"},
        HOSTILE,
    )
    # A plain log line can never start a command: it is one line, beginning with our own text.
    assert info_line == HOSTILE.replace("\r\n", " ").replace("\r", " ")


def test_outside_actions_warnings_are_plain_lines_on_stderr() -> None:
    report, out, err = reporter({})
    report.mask(TOKEN)
    report.warning(f"bad row, token {TOKEN}", file="r.json", line=2)
    report.warning("no line", file="r.json")
    report.warning("no file")
    report.info("progress")
    assert out.getvalue() == ""
    assert err.getvalue().splitlines() == [
        "warning: r.json:2: bad row, token ***",
        "warning: r.json: no line",
        "warning: no file",
        "progress",
    ]


def test_file_warnings_beyond_the_cap_go_to_the_log_not_to_annotations() -> None:
    report, out, _ = reporter(ACTIONS)
    warnings = [CollectWarning("r.ndjson", line, f"malformed line {line}") for line in range(1, 121)]
    report.file_warnings(warnings)
    lines = out.getvalue().splitlines()
    annotations = [line for line in lines if line.startswith("::warning")]
    assert len(annotations) == MAX_ANNOTATIONS + 1
    assert parse_command(annotations[0]) == ("warning", {"file": "r.ndjson", "line": "1"}, "malformed line 1")
    assert annotations[-1] == "::warning::70 more warnings about the result files follow in the log"
    plain = [line for line in lines if not line.startswith("::")]
    assert plain == [f"warning: r.ndjson:{line}: malformed line {line}" for line in range(51, 121)]


# --- outputs --------------------------------------------------------------------------------------


def test_outputs_use_the_heredoc_form_with_a_delimiter_no_value_contains(tmp_path: Path) -> None:
    target = tmp_path / "output.txt"
    target.write_text("earlier<<EOF\nx\nEOF\n")  # what an earlier step wrote stays
    values = {
        "status": "uploaded",
        "payload-path": str(tmp_path / "p.json"),
        "tricky": "line one\nghadelimiter_0123\nEOF\nstatus<<x",
        "empty": "",
    }
    write_outputs(values, {"GITHUB_OUTPUT": str(target)})
    text = target.read_text()
    assert parse_outputs(text) == {"earlier": "x", **values}
    delimiters = re.findall(r"^[a-z-]+<<(ghadelimiter_[0-9a-f]{32})$", text, flags=re.MULTILINE)
    assert len(set(delimiters)) == 4


def test_outputs_outside_actions_are_printed() -> None:
    stream = io.StringIO()
    write_outputs({"status": "dry-run", "total": "3"}, {}, stream)
    assert stream.getvalue() == "status=dry-run\ntotal=3\n"


# --- summary --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        HOSTILE,
        "<img src=x onerror=alert(1)>",
        "[click](javascript:alert(1))",
        "a | b",
        "``code``",
        "*em* _em_ ~~s~~",
        "&lt;already&gt;",
    ],
)
def test_md_leaves_nothing_for_markdown_or_html_to_interpret(text: str) -> None:
    cell = md(text, 10_000)
    html = render(f"| x |\n|---|\n| {cell} |\n")
    assert re.findall(r"<(\w+)", html) == ["table", "thead", "tr", "th", "tbody", "tr", "td"] + ["br"] * (
        cell.count("<br>")
    )
    assert "\n" not in cell and "\r" not in cell


def test_md_bounds_the_length() -> None:
    assert md("x" * 500, 10) == "x" * 9 + "…"


def test_summary_of_hostile_results_renders_as_inert_text() -> None:
    summary = render_summary(hostile_payload(), status="failed", detail=HOSTILE, warnings=[HOSTILE, "plain"])
    for raw in ("<script>", "](javascript:", "`tick`", "| col |", "\r", "**bold**", "@someone"):
        assert raw not in summary
    html = render(summary)
    tags = set(re.findall(r"<(\w+)", html))
    assert tags <= {
        "h2",
        "h3",
        "p",
        "strong",
        "table",
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
        "code",
        "br",
        "ul",
        "li",
    }
    assert "<script" not in html and "<a " not in html and "<img" not in html and "<em>" not in html
    # Every table row keeps its column count: no pipe in the text split a cell.
    for table in re.findall(r"<table>.*?</table>", html, flags=re.DOTALL):
        widths = {
            row.count("<td>") + row.count("<th>") for row in re.findall(r"<tr>.*?</tr>", table, re.DOTALL)
        }
        assert len(widths) == 1, table
    assert html.count("<strong>") == 1  # only our own "Upload:" label
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_summary_content() -> None:
    rows = [
        RecipeResult(
            recipe_name="a", ecosystem="npm", result="failed", platform="linux-x86_64", error_category="net"
        ),
        RecipeResult(
            recipe_name="b", ecosystem="npm", result="failed", platform="darwin-arm64", error_category="net"
        ),
        RecipeResult(recipe_name="c", ecosystem="npm", result="failed", error_message="boom"),
        RecipeResult(recipe_name="d", ecosystem="pypi", result="passed", platform="linux-x86_64"),
        RecipeResult(recipe_name="e", ecosystem="pypi", result="skipped", platform="linux-x86_64"),
    ]
    payload = BatchPayload(
        batch_id="nightly-7",
        ecosystem="mixed",
        started_at="2026-02-19T14:31:25Z",
        total_recipes=5,
        passed=1,
        failed=3,
        skipped=1,
        success_rate=0.25,
        results=rows,
    )
    summary = render_summary(payload, status="uploaded", detail="stored as batch run 4", warnings=[])
    assert "**Upload:** uploaded — stored as batch run 4" in summary
    assert "| mixed | 5 | 1 | 3 | 1 | 25.0% |" in summary
    for row in (
        "| npm | darwin-arm64 | 0 | 1 | 0 |",
        "| npm | — | 0 | 1 | 0 |",
        "| pypi | linux-x86&#95;64 | 1 | 0 | 1 |",
    ):
        assert row in summary
    assert "| net | 2 |\n| uncategorised | 1 |" in summary
    assert "### First failures (3 of 3)" in summary
    assert "| c | — |  | <code>boom</code> |" in summary
    assert "### Warnings" not in summary


def test_summary_stays_under_one_mebibyte_for_any_batch() -> None:
    rows = [
        RecipeResult(
            recipe_name="|" * 5000,
            ecosystem=f"eco{i % 7}",
            result="failed",
            platform=f"<p{i}>" + "_" * 5000,
            error_category=f"`cat{i}`" * 100,
            error_message="[" * 100_000,
        )
        for i in range(2000)
    ]
    payload = BatchPayload(batch_id="big", ecosystem="x", started_at="2026-01-01T00:00:00Z", results=rows)
    summary = render_summary(payload, status="dry-run", detail="", warnings=["<w>" * 10_000] * 500)
    assert len(summary.encode()) < SUMMARY_LIMIT
    assert "1900 more rows not shown." in summary and "- 480 more in the step log" in summary


def test_summary_is_cut_with_a_note_at_the_limit() -> None:
    summary = render_summary(
        hostile_payload(), status="failed", detail="x" * 400, warnings=["w"] * 20, limit=1500
    )
    assert len(summary.encode()) < 1500
    assert summary.endswith("\n_Summary cut to stay under GitHub's 1 MiB limit._\n")
    assert summary.startswith("## Batch metrics: ")


def test_summary_is_appended(tmp_path: Path) -> None:
    target = tmp_path / "summary.md"
    env = {"GITHUB_STEP_SUMMARY": str(target)}
    assert write_summary("first\n", env) and write_summary("second\n", env)
    assert target.read_text() == "first\nsecond\n"
    assert write_summary("nowhere\n", {}) is False


def test_the_summary_redacts_before_it_escapes_or_cuts() -> None:
    token = "tok_under_scored_77"
    report, _, _ = reporter(ACTIONS)
    report.mask(token)
    message = "x" * 290 + f" {token} and https://x-access-token:{token}@github.com/o/r"
    payload = hostile_payload()
    payload["results"][0]["error_message"] = message
    payload["results"][0]["recipe_name"] = f"Bearer {token}"
    text = render_summary(
        payload, status="failed", detail=f"said {token}", warnings=[f"w {token}"], redact=report.redact
    )
    for shown in (token, token.replace("_", "&#95;"), "tok&#95;", "under&#95;scored"):
        assert shown not in text
    assert text.count("&#42;&#42;&#42;") >= 4  # `***`, escaped like any other text
    assert render_summary(payload, status="s", detail="Bearer abc", warnings=[]).count("Bearer abc") == 0


def test_warnings_and_log_lines_redact_credential_shapes() -> None:
    report, out, _ = reporter(ACTIONS)
    report.warning("push to https://user:pw@example.com failed")
    report.info("header Authorization: Bearer abc.def")
    assert out.getvalue().splitlines() == [
        "::warning::push to https://***@example.com failed",
        "header Authorization: Bearer ***",
    ]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"INPUT_ECOSYSTEM": "a\udcffb"},
            "input ecosystem: 'a\\udcffb' is not valid UTF-8 text; using the ecosystem",
        ),
        (
            {"INPUT_BATCH-ID": "\udcff"},
            "input batch-id: '\\udcff' is not valid UTF-8 text; using the default",
        ),
        ({"INPUT_STARTED-AT": "yesterday"}, "input started-at: 'yesterday' is not an RFC 3339 timestamp"),
        (
            {"INPUT_STARTED-AT": "0001-01-01T00:00:00+01:00"},
            "input started-at: '0001-01-01T00:00:00+01:00' is ",
        ),
        (
            {"INPUT_STARTED-AT": "9999-12-31T23:59:59-23:59"},
            "input started-at: '9999-12-31T23:59:59-23:59' is ",
        ),
    ],
)
def test_text_inputs_are_checked_and_named_as_themselves(env: dict[str, str], message: str) -> None:
    inputs, problems = read_inputs(env)
    [problem] = problems
    assert problem.startswith(message), problem
    assert (inputs.ecosystem, inputs.batch_id, inputs.started_at) == (None, None, None)
