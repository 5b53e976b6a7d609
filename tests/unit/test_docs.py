from pathlib import Path

from sqs2pg.config import PREFIX, knob_fields

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_every_setting_is_documented_in_the_readme() -> None:
    missing = [PREFIX + f.name.upper() for f in knob_fields() if f"`{PREFIX}{f.name.upper()}`" not in README]
    assert not missing, f"README.md does not document {missing}"


def test_readme_opens_with_the_two_commands_and_ci_calls_the_test_command() -> None:
    first_block = README.split("```")[1]
    assert "scripts/run-local.sh" in first_block and "scripts/test.sh" in first_block
    ci = (Path(__file__).resolve().parents[2] / ".ci" / "run").read_text()
    assert "scripts/test.sh" in ci
