"""`lav demo-data --help` says what it writes, negatives included."""

from __future__ import annotations

from lav.cli import main


def test_demo_data_help_says_it_writes_negative_samples_without_a_box(capsys):
    assert main(["demo-data", "--help"]) == 0  # `main` turns argparse's exit into its code
    text = " ".join(capsys.readouterr().out.split())
    assert "negative sample (gt_type: negative) without a box" in text
    assert "not on the screen" in text
