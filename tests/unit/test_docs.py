"""The documentation must match the code (issues 25, 26: docs a newcomer can follow).

- the configuration reference's key tables are generated from the models and current;
- every Lambda environment variable has a row, and every row is a variable;
- the README stays a guide (a line cap), its repository map matches the tree, its
  documentation map lists every docs/ file;
- every relative link and anchor in the README and docs/ resolves, and every
  ``README, "<section>"`` reference in code or docs names a README section.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fargate_runners import config_doc
from fargate_runners.config import PROFILE_KEYS, TOP_LEVEL_KEYS
from lambda_fn.config import ENV_DEFAULTS

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
CONFIGURATION = (ROOT / "docs" / "configuration.md").read_text()
DOCUMENTED = set(re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)`", CONFIGURATION))
#: The README is a guide; the reference lives in docs/ (issue 26). Raise with care.
README_MAX_LINES = 520
#: Packages whose every module the README's repository layout must name.
MAPPED_PACKAGES = ("lambda_fn", "fargate_runners", "runners_cli", "localdev", "bench")
#: Top-level directories that are build output or installs, not the repository's own.
NOT_MAPPED = {"node_modules", "cdk.out", "build", "dist", "htmlcov"}
MARKDOWN = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _section(text: str, heading: str) -> str:
    """The body of ``## heading`` up to the next second-level heading."""
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


# --- configuration reference ------------------------------------------------------------


def test_generated_configuration_tables_are_current(capsys: pytest.CaptureFixture[str]) -> None:
    status = config_doc.main(["--check"], root=ROOT)
    assert status == 0, capsys.readouterr().out


@pytest.mark.parametrize("key", sorted(TOP_LEVEL_KEYS))
def test_every_context_key_is_documented(key: str) -> None:
    assert key in DOCUMENTED, f"cdk.json context key {key!r} is missing from docs/configuration.md"


@pytest.mark.parametrize("key", sorted(PROFILE_KEYS))
def test_every_profile_key_is_documented(key: str) -> None:
    assert key in DOCUMENTED, f"profile key {key!r} is missing from docs/configuration.md"


def test_the_lambda_environment_table_is_exactly_the_variables() -> None:
    section = _section(CONFIGURATION, "Lambda environment")
    rows = set(re.findall(r"^\| `([A-Z][A-Z0-9_]*)` \|", section, flags=re.MULTILINE))
    assert rows, "docs/configuration.md has no Lambda environment table"
    assert set(ENV_DEFAULTS) - rows == set(), "variables without a row in the table"
    assert rows - set(ENV_DEFAULTS) == set(), "rows for variables lambda_fn/config.py lacks"


def test_a_field_without_a_docstring_fails_the_generator() -> None:
    from pydantic.fields import FieldInfo

    with pytest.raises(ValueError, match="has no docstring"):
        config_doc.row("new_key", FieldInfo(annotation=int, default=1))


def test_the_default_paragraph_replaces_the_models_default() -> None:
    from pydantic.fields import FieldInfo

    field = FieldInfo(annotation=str, default=None, description="Meaning.\n\nDefault: unset (x).")
    assert config_doc.row("k", field) == "| `k` | string | unset (x) | Meaning |"
    plain = FieldInfo(annotation=tuple[str, ...], default=(), description="Patterns.")
    assert config_doc.row("k", plain) == "| `k` | list of strings | `[]` | Patterns |"


# --- the README as a guide --------------------------------------------------------------


def test_the_readme_stays_a_guide() -> None:
    lines = README.count("\n")
    assert lines <= README_MAX_LINES, (
        f"README.md has {lines} lines (cap {README_MAX_LINES}): move reference material to docs/"
    )


def test_every_make_target_the_docs_name_exists() -> None:
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, flags=re.MULTILINE))
    text = "\n".join(path.read_text() for path in MARKDOWN)
    named = set(re.findall(r"`make ([a-z][a-z-]*)", text))
    named |= set(re.findall(r"^make ([a-z][a-z-]*) ", README, flags=re.MULTILINE))
    assert named, "the docs name no make target"
    assert named <= targets, f"docs name missing targets: {sorted(named - targets)}"


def test_the_documentation_map_lists_every_docs_file() -> None:
    section = _section(README, "Documentation")
    listed = set(re.findall(r"\(docs/([\w.-]+\.md)\)", section))
    present = {path.name for path in (ROOT / "docs").glob("*.md")}
    assert present - listed == set(), "docs/ files missing from README's Documentation table"
    assert listed - present == set(), "README's Documentation table names missing files"


# --- repository layout ------------------------------------------------------------------


def _layout() -> dict[str, str]:
    """Top-level entry of the README's layout block -> the text of its lines."""
    block = _section(README, "Repository layout").split("```")[1]
    regions: dict[str, str] = {}
    entry = ""
    for line in block.splitlines():
        if not line.strip():
            continue
        if not line.startswith(" "):
            entry = line.split()[0]
            regions[entry] = ""
        regions[entry] += line + "\n"
    return regions


def _package_names(package: str) -> set[str]:
    """What the layout must name in a package: modules, scripts and subdirectories."""
    base = ROOT / package
    names = {
        path.name
        for pattern in ("*.py", "*.sh")
        for path in base.rglob(pattern)
        if path.name != "__init__.py" and "__pycache__" not in path.parts
    }
    names |= {
        f"{path.name}/" for path in base.iterdir() if path.is_dir() and path.name != "__pycache__"
    }
    return names


def _mentions(text: str, name: str) -> bool:
    after = "" if name.endswith("/") else r"(?![\w-])"
    return re.search(rf"(?<![\w.-]){re.escape(name)}{after}", text) is not None


def test_the_layout_names_every_top_level_directory() -> None:
    regions = _layout()
    entries = {entry.split("/")[0] for entry in regions}
    present = {
        path.name
        for path in ROOT.iterdir()
        if path.is_dir()
        and not path.name.startswith(".")
        and path.name not in NOT_MAPPED
        and not path.name.endswith(".egg-info")
    }
    missing = sorted(present - entries)
    assert not missing, f"README 'Repository layout' has no line for {missing}"
    gone = sorted(entry for entry in regions if not (ROOT / entry).exists())
    assert not gone, f"README 'Repository layout' names what does not exist: {gone}"


@pytest.mark.parametrize("package", MAPPED_PACKAGES)
def test_the_layout_names_every_module(package: str) -> None:
    region = _layout()[f"{package}/"]
    missing = sorted(name for name in _package_names(package) if not _mentions(region, name))
    assert not missing, (
        f"README 'Repository layout' does not name {missing} in {package}/: add a line "
        "(or a mention on a line of the same package)"
    )


@pytest.mark.parametrize("package", MAPPED_PACKAGES)
def test_the_layout_names_only_what_exists(package: str) -> None:
    region = _layout()[f"{package}/"]
    base = ROOT / package
    every = {path.name for path in base.rglob("*")}
    named = set(re.findall(r"(?<![\w.-])([\w-]+(?:/[\w.-]+)*\.(?:py|sh|txt))\b", region))
    firsts = (line.split()[0].rstrip(",") for line in region.splitlines()[1:])
    named |= {name for name in firsts if re.match(r"^[\w.-]+(/|\.\w+)$", name)}
    gone = sorted(
        name
        for name in named
        if not ((base / name).exists() if "/" in name.rstrip("/") else name.rstrip("/") in every)
    )
    assert not gone, f"README 'Repository layout' names what {package}/ does not have: {gone}"


# --- links and references ---------------------------------------------------------------


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    fenced = False
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and re.match(r"^#{1,6} ", line):
            slug = _slug(line.lstrip("#"))
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            anchors.add(slug if count == 0 else f"{slug}-{count}")
        anchors |= set(re.findall(r'<a (?:id|name)="([^"]+)"', line))
    return anchors


def _links(path: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.DOTALL)
    return re.findall(r"\]\(([^)\s]+)\)", text)


@pytest.mark.parametrize("path", MARKDOWN, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(path: Path) -> None:
    broken = []
    for link in _links(path):
        if re.match(r"^[a-z]+:", link):
            continue
        target, _, anchor = link.partition("#")
        file = (path.parent / target).resolve() if target else path
        if not file.exists() or (anchor and file.suffix == ".md" and anchor not in _anchors(file)):
            broken.append(link)
    assert not broken, f"{path.relative_to(ROOT)}: broken links {broken}"


def test_every_readme_section_reference_exists() -> None:
    """``README, "Networks"`` in a message or comment must name a README section."""
    sections = {line.lstrip("#").strip() for line in README.splitlines() if line.startswith("#")}
    sources = [
        path
        for folder in (*MAPPED_PACKAGES, "docs", "tests", "cdk")
        for path in (ROOT / folder).rglob("*")
        if path.suffix in (".py", ".sh", ".md")
        and "upgrade" not in path.parts
        and path != Path(__file__).resolve()
    ]
    wrong = [
        f"{path.relative_to(ROOT)}: {name}"
        for path in sources
        for name in re.findall(r"README[,:]? [\"']([^\"'\n]+)[\"']", path.read_text())
        if name not in sections
    ]
    assert not wrong, f"references to README sections that do not exist: {wrong}"
