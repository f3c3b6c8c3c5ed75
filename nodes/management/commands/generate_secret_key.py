import secrets

from cryptography.fernet import Fernet
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Print a new SECRET_KEY, or with --fernet a new SECRETS_ENCRYPTION_KEY."
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("--fernet", action="store_true")

    def handle(self, *args, fernet, **options):
        self.stdout.write(Fernet.generate_key().decode() if fernet else secrets.token_urlsafe(50))
