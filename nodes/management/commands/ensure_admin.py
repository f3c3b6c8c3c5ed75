import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "On first start, create the 'admin' account and write its password to var/admin-password.txt."

    def handle(self, *args, **options):
        User = get_user_model()
        password_file = Path(settings.BASE_DIR) / "var" / "admin-password.txt"
        if User.objects.filter(is_superuser=True).exists():
            if password_file.exists():
                self.stdout.write(f"Admin account: admin (first password in {password_file})")
            return
        password = secrets.token_urlsafe(18)
        User.objects.create_superuser("admin", "", password)
        password_file.parent.mkdir(parents=True, exist_ok=True)
        password_file.write_text(password + "\n")
        password_file.chmod(0o600)
        self.stdout.write(f"Created the admin account 'admin'; its password is in {password_file}")
