"""Write .env with fresh secrets on first start, unless they come from the environment.

Runs before Django (settings refuse to load without these), so it uses only the
standard library and cryptography.
"""

import os
import secrets
import sys
from pathlib import Path

from cryptography.fernet import Fernet

env_file = Path(__file__).resolve().parent.parent / ".env"
existing = env_file.read_text() if env_file.exists() else ""
lines = []
if "SECRET_KEY" not in os.environ and "SECRET_KEY=" not in existing:
    lines.append(f"SECRET_KEY={secrets.token_urlsafe(50)}")
if "SECRETS_ENCRYPTION_KEY" not in os.environ and "SECRETS_ENCRYPTION_KEY=" not in existing:
    lines.append(f"SECRETS_ENCRYPTION_KEY={Fernet.generate_key().decode()}")
if lines:
    with env_file.open("a") as fh:
        fh.write("\n".join(lines) + "\n")
    env_file.chmod(0o600)
    print(f"Wrote new secrets to {env_file} (keep it: it decrypts the stored credentials).", file=sys.stderr)
