"""One self-contained HTML page per study: every report of its folder, plots embedded as base64 PNG.

The page is built from the reports' own Markdown (rendered by markdown-it-py), so the page and the
Markdown files never say different things. Images referenced by a report (``![...](name.png)``) are
inlined; the page has no external reference and opens from an e-mail attachment or an MLflow artifact.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

from markdown_it import MarkdownIt

# Report Markdown files in page order, with their section titles.
SECTIONS: dict[str, str] = {
    "table.md": "Table",
    "claims.md": "Claims",
    "ablation.md": "Ablation",
    "bias.md": "Bias",
    "agreement.md": "Label agreement",
    "embeddings.md": "Embeddings",
    "calibration.md": "Calibration",
    "curves.md": "Learning curves",
    "search.md": "Searches",
    "cross_corpus.md": "Cross-corpus",
    "mechanism.md": "Mechanism",
    "compare.md": "Comparison",
}

_STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
nav { background: #f4f6f8; padding: .5em 1em; border-radius: 6px; }
nav a { margin-right: 1.2em; }
section { border-top: 2px solid #dde3ea; margin-top: 2.5em; padding-top: .5em; }
table { border-collapse: collapse; margin: .8em 0; font-size: 13px; }
th, td { border: 1px solid #cfd6de; padding: 3px 7px; text-align: left; }
th { background: #eef2f6; }
tr:nth-child(even) td { background: #fafbfc; }
img { max-width: 100%; height: auto; display: block; margin: .8em 0; }
code { background: #f2f2f2; padding: 0 3px; }
"""

_IMG_SRC = re.compile(r'(<img\b[^>]*?\bsrc=")([^":]+?\.png)(")')


def _renderer() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": False}).enable("table")


def study_page(folder: Path, study_name: str) -> str:
    """The HTML page of every report Markdown in ``folder`` (missing reports are simply absent)."""
    md = _renderer()
    sections, nav = [], []
    for name, title in SECTIONS.items():
        path = folder / name
        if not path.exists():
            continue
        anchor = name.removesuffix(".md")
        body = md.render(path.read_text(encoding="utf-8"))
        body = _IMG_SRC.sub(lambda m: m.group(1) + _data_uri(folder / m.group(2)) + m.group(3), body)
        sections.append(f'<section id="{anchor}">\n{body}</section>')
        nav.append(f'<a href="#{anchor}">{title}</a>')
    title = html.escape(f"{study_name}: gemo-bench reports")
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{title}</title><style>{_STYLE}</style></head>\n'
        f"<body><h1>{title}</h1>\n<nav>{''.join(nav) or 'no reports yet'}</nav>\n"
        + "\n".join(sections)
        + "\n</body></html>\n"
    )


def _data_uri(path: Path) -> str:
    if not path.exists():
        return html.escape(path.name)  # left as a (broken) relative link, visibly
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")
