"""Write .env with fresh secrets on first start, unless they come from the environment.

A secret that is missing, empty, or still the value .env.example shows (a .env copied from the
example) is replaced in place by a fresh one; every other line is kept.
Runs before Django (settings refuse to load without these), so it uses only the
standard library and cryptography.
"""

import os
import secrets
import sys
from pathlib import Path

from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parent.parent
NEW = {
    "SECRET_KEY": lambda: secrets.token_urlsafe(50),
    "SECRETS_ENCRYPTION_KEY": lambda: Fernet.generate_key().decode(),
}


def _value(line: str) -> tuple[str, str]:
    name, sep, value = line.partition("=")
    return (name.strip(), value.strip()) if sep and not line.lstrip().startswith("#") else ("", "")


def _example_values() -> set[str]:
    path = ROOT / ".env.example"
    lines = path.read_text().splitlines() if path.exists() else []
    pairs = [_value(line.lstrip("# ")) for line in lines]  # commented-out examples count too
    return {value for name, value in pairs if name in NEW and value}


def main() -> None:
    env_file = ROOT / ".env"
    lines = env_file.read_text().splitlines() if env_file.exists() else []
    examples = _example_values()
    wrote = []
    for name, make in NEW.items():
        if name in os.environ:
            continue
        at = [i for i, line in enumerate(lines) if _value(line)[0] == name]
        if at and _value(lines[at[-1]])[1] and _value(lines[at[-1]])[1] not in examples:
            continue  # the last assignment wins when .env is read: it holds a real secret
        for i in at:
            lines[i] = f"# {name}: replaced by scripts/dev_env.py (it was empty or the example's value)"
        lines.append(f"{name}={make()}")
        wrote.append(name)
    if wrote:
        # Created 0600: the file holds the key that decrypts every stored credential.
        fd = os.open(env_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write("\n".join(lines) + "\n")
        env_file.chmod(0o600)
        print(f"Wrote new {' and '.join(wrote)} to {env_file} (keep it: it decrypts the stored credentials).",
              file=sys.stderr)


if __name__ == "__main__":
    main()
