"""Prints one of the two commands the README opens with: `main` (set up, train, sample) or `test`.

The README's first fenced block holds exactly two command lines; `.ci/run` executes the second, so
the command a user copies is the command CI runs.
"""
import pathlib
import sys


def readme_commands(readme=pathlib.Path(__file__).resolve().parent.parent / "README.md"):
    text = readme.read_text()
    start = text.index("```bash\n") + len("```bash\n")
    block = text[start:text.index("```", start)]
    commands = [line for line in block.splitlines() if line.strip() and not line.startswith("#")]
    if len(commands) != 2:
        raise SystemExit(f"README's first block must hold exactly 2 commands, found {len(commands)}")
    return dict(zip(["main", "test"], commands))


if __name__ == "__main__":
    print(readme_commands()[sys.argv[1]])
