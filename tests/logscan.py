"""No secrets, names, encodings or image bytes in logs: a pytest plugin that checks the whole run.

It sees two streams, in every process (each xdist worker too):

- every log record a handler emits, formatted by that handler (Powertools'
  JSON lines, the standard library's loggers, pytest's own capture handler):
  ``logging.Handler.handle`` is wrapped for the session;
- each test phase's captured stdout and stderr (Powertools' metrics and
  anything else printed), read from the test reports.

Each line is matched against ``RULES``. A finding keeps the rule, the test
and where the line came from (logger and source line, or the stream), never
the matched text. Workers send their findings to the controller
(``workeroutput``); at the end the session fails (exit status 1) with the
list, unless it already failed.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pytest

FACES = Path(__file__).resolve().parents[1] / "fixtures" / "faces"

# The mail_from default (config.py): a system sender, not a person.
ALLOWED_EMAILS = frozenset({"quitclaim@example.org"})


@dataclass(frozen=True)
class Rule:
    name: str
    pattern: re.Pattern[str]
    what: str


def _people(faces: Path = FACES) -> list[str]:
    """The fixture people's names: folder names (``kit_harington``) and their parts."""
    names: set[str] = set()
    folders = [p.name for p in (faces / "enroll").iterdir()] if (faces / "enroll").is_dir() else []
    labels = faces / "labels.json"
    if labels.is_file():
        for entry in json.loads(labels.read_text(encoding="utf-8"))["uploads"].values():
            people = entry.get("people")
            if isinstance(people, list):
                folders.extend(p for p in people if p != "unknown")
    for folder in folders:
        parts = folder.split("_")
        names.add(" ".join(parts))
        names.update(p for p in parts if len(p) > 3)  # surnames and given names
    return sorted(names, key=len, reverse=True)


def _name_pattern(names: Iterable[str]) -> re.Pattern[str]:
    # A name is a word: "obama", "Kit Harington", "kit_harington", "rose-leslie".
    alternatives = [r"[\s_-]?".join(map(re.escape, n.split())) for n in names]
    return re.compile(r"(?<![A-Za-z])(?:" + "|".join(alternatives) + r")(?![A-Za-z])", re.I)


def build_rules(faces: Path = FACES) -> list[Rule]:
    people = _people(faces)
    rules = [
        # usecases/keys.py: qc_{tenant}_{48 hex}
        Rule("api_key", re.compile(r"qc_[a-z0-9-]{1,64}_[0-9a-f]{48}"), "an API key"),
        Rule("webhook_secret", re.compile(r"whsec_[A-Za-z0-9+/=]{16,}"), "a webhook secret"),
        Rule(
            "aws_secret_key",
            re.compile(
                r"(?i:aws_?secret_?access_?key)\W{1,5}[A-Za-z0-9/+=]{16,}"
                r"|(?<![A-Za-z0-9/+=])(?=[A-Za-z0-9/+]{0,39}[A-Z])(?=[A-Za-z0-9/+]{0,39}[a-z])"
                r"(?=[A-Za-z0-9/+]{0,39}[0-9])(?=[A-Za-z0-9/+]{0,39}[/+])"
                r"[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])"
            ),
            "an AWS secret access key",
        ),
        Rule("aws_access_key_id", re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"), "an AWS key id"),
        Rule(
            "email",
            re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"),
            "an e-mail address",
        ),
        Rule(
            "encoding",
            # Encodings print at full precision; timings and boxes are rounded.
            re.compile(r"-?\d+\.\d{4,}(?:e-?\d+)?(?:(?:\s*,\s*|\s+)-?\d+\.\d{4,}(?:e-?\d+)?){31,}"),
            "a face encoding (32+ precise floats in a row)",
        ),
        Rule("image_base64", re.compile(r"/9j/[A-Za-z0-9+/]{8}|iVBORw0KGgo"), "base64 image bytes"),
    ]
    if people:
        rules.append(Rule("person_name", _name_pattern(people), "a fixture person's name"))
    return rules


RULES = build_rules()
ENCODING = next(r.pattern for r in RULES if r.name == "encoding")


def scan_line(line: str, rules: Iterable[Rule] = RULES) -> list[str]:
    """The names of the rules ``line`` breaks (never the matched text)."""
    hits = []
    for rule in rules:
        for match in rule.pattern.finditer(line):
            if rule.name == "email" and match.group(0).lower() in ALLOWED_EMAILS:
                continue
            hits.append(rule.name)
            break
    return hits


def json_path(line: str, rule: str) -> str:
    """Where in a JSON line ``rule`` is broken (``$.audit.faces[0]``); ``?`` for other lines."""
    try:
        document = json.loads(line)
    except ValueError:
        return "?"
    rules = [r for r in RULES if r.name == rule]

    def walk(value: Any, path: str) -> str | None:
        if isinstance(value, dict):
            for key, item in value.items():
                found = walk(item, f"{path}.{key}") or (
                    path if scan_line(str(key), rules) else None
                )
                if found:
                    return found
        elif isinstance(value, list):
            if scan_line(json.dumps(value), rules) and not any(
                scan_line(json.dumps(item), rules) for item in value
            ):
                return path  # the list as a whole (a run of floats)
            for index, item in enumerate(value):
                found = walk(item, f"{path}[{index}]")
                if found:
                    return found
        elif scan_line(str(value), rules):
            return path
        return None

    return walk(document, "$") or "$"


@dataclass(frozen=True)
class Finding:
    rule: str
    test: str
    where: str

    def __str__(self) -> str:
        return f"{self.rule}: {self.where} (during {self.test})"


class LogScan:
    """The plugin: collects findings, reports them, fails the session."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.findings: dict[Finding, int] = {}
        self.lines = 0
        self.current = "(collection)"
        self._lock = threading.Lock()
        self._sealed: list[list[Finding]] = []
        self._original_handle: Any = None

    # -- capture -----------------------------------------------------------

    def install(self) -> None:
        original = logging.Handler.handle
        scan = self

        def handle(handler: logging.Handler, record: logging.LogRecord) -> Any:
            emitted = original(handler, record)
            if emitted:
                scan.record(handler, record)
            return emitted

        self._original_handle = original
        logging.Handler.handle = handle  # type: ignore[method-assign]

    def uninstall(self) -> None:
        if self._original_handle is not None:
            logging.Handler.handle = self._original_handle  # type: ignore[method-assign]
            self._original_handle = None

    def record(self, handler: logging.Handler, record: logging.LogRecord) -> None:
        try:
            text = handler.format(record)
        except Exception:  # a broken record is the logging module's business
            return
        where = f"log {record.name} {Path(record.pathname).name}:{record.lineno}"
        self.scan_text(text, where)

    def scan_text(self, text: str, where: str, *, structured: bool = False) -> None:
        hits = set()
        for line in text.splitlines():
            self.lines += 1
            for rule in scan_line(line):
                hits.add(rule)
                # A printed JSON line (Powertools) is placed by its key, never its value.
                at = f"{where} at {json_path(line, rule)}" if structured else where
                self.add(Finding(rule, self.current, at))
        # numpy prints an array over several lines of a few numbers each.
        if "encoding" not in hits and "\n" in text and ENCODING.search(" ".join(text.split())):
            self.add(Finding("encoding", self.current, f"{where} (over several lines)"))

    def add(self, finding: Finding) -> None:
        with self._lock:
            if self._sealed:
                self._sealed[-1].append(finding)
            else:
                self.findings[finding] = self.findings.get(finding, 0) + 1

    @contextmanager
    def sealed(self) -> Iterator[list[Finding]]:
        """Findings inside the block go to the yielded list, not to the session's."""
        found: list[Finding] = []
        with self._lock:
            self._sealed.append(found)
        try:
            yield found
        finally:
            with self._lock:
                self._sealed.remove(found)

    # -- hooks -------------------------------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logstart(self, nodeid: str, location: Any) -> None:
        self.current = nodeid

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if getattr(report, "node", None) is not None:
            return  # xdist controller: the worker that ran the test scanned it already
        for name, content in report.sections:
            # A report carries the sections of the phases before it too: read each once.
            if name in (f"Captured stdout {report.when}", f"Captured stderr {report.when}"):
                self.scan_text(content, name.lower(), structured=True)

    @pytest.hookimpl(optionalhook=True)  # an xdist hook: absent without xdist
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        """xdist controller: a worker's findings."""
        output = getattr(node, "workeroutput", {}).get("logscan")
        if not output:
            return
        self.lines += output["lines"]
        for item in output["findings"]:
            finding = Finding(item["rule"], item["test"], item["where"])
            self.findings[finding] = self.findings.get(finding, 0) + item["count"]

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        self.uninstall()
        workeroutput = getattr(self.config, "workeroutput", None)
        if workeroutput is not None:
            workeroutput["logscan"] = {
                "lines": self.lines,
                "findings": [{**asdict(f), "count": n} for f, n in self.findings.items()],
            }
            return
        if self.findings and session.exitstatus == 0:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if getattr(self.config, "workeroutput", None) is not None:
            return
        if not self.findings:
            terminalreporter.write_line(f"logscan: {self.lines} log lines scanned, nothing found")
            return
        terminalreporter.section("logscan: forbidden values in logs", red=True, bold=True)
        for finding, n in sorted(self.findings.items(), key=lambda i: str(i[0])):
            terminalreporter.write_line(f"{finding} x{n}")
        terminalreporter.write_line(
            f"logscan: {len(self.findings)} findings in {self.lines} lines: the session fails"
        )


_KEY = pytest.StashKey[LogScan]()


def pytest_configure(config: pytest.Config) -> None:
    plugin = LogScan(config)
    plugin.install()
    config.stash[_KEY] = plugin
    config.pluginmanager.register(plugin, "logscan")


def pytest_unconfigure(config: pytest.Config) -> None:
    plugin = config.stash.get(_KEY, None)
    if plugin is not None:
        plugin.uninstall()


@pytest.fixture
def logscan(request: pytest.FixtureRequest) -> LogScan:
    """The session's scanner (for tests of the scanner itself)."""
    return request.config.stash[_KEY]
