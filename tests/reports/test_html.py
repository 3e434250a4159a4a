"""The study page: every report of a folder, in order, with its images inlined."""

import base64

from benchmark.reports.html import study_page

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def test_page_holds_every_report_in_order_with_inlined_images(tmp_path):
    (tmp_path / "bias.md").write_text("# Bias\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n![gap](bias_gap.png)\n")
    (tmp_path / "table.md").write_text("# Table\n\ntext <script>alert(1)</script>\n")
    (tmp_path / "bias_gap.png").write_bytes(PNG)
    page = study_page(tmp_path, "s")
    assert page.index('id="table"') < page.index('id="bias"')
    assert "ablation" not in page  # absent reports are left out
    assert "<table>" in page and "<td>1</td>" in page
    assert f'src="data:image/png;base64,{base64.b64encode(PNG).decode()}"' in page
    assert "bias_gap.png" not in page.split("<body>")[1].replace('alt="gap"', "")
    assert "<script>" not in page  # raw HTML in a report is escaped, not run
    assert 'href="#bias"' in page


def test_a_missing_image_is_left_visibly_broken(tmp_path):
    (tmp_path / "ablation.md").write_text("![x](gone.png)\n")
    assert 'src="gone.png"' in study_page(tmp_path, "s")
