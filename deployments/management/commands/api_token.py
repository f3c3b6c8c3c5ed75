from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from deployments.api import tokens
from joget_cluster.access import ROLE_NAMES, role_of


class Command(BaseCommand):
    help = ("Make a REST API token for USER, acting with that user's role. The token is printed once, alone on "
            "the last line; only its digest is stored.")

    def add_arguments(self, parser):
        parser.add_argument("user")
        parser.add_argument("--name", default="", help="What the token is for (shown in lists and the audit "
                                                        "trail); default: 'token of USER'.")

    def handle(self, *args, user, name, **options):
        try:
            owner = get_user_model().objects.get(username=user)
        except get_user_model().DoesNotExist:
            raise CommandError(f"No user named {user!r}.") from None
        role = role_of(owner)
        if role is None:
            raise CommandError(f"{user} has no role (viewer, operator or admin): a token of theirs could do nothing.")
        name = (name.strip() or f"token of {user}")[:100]
        row, token = tokens.issue(owner, name)
        self.stderr.write(f"API token {row.name!r} (id {row.key_id}) for {user}, role {ROLE_NAMES[role]}. "
                          "It is shown once: keep it now. Send it as 'Authorization: Bearer <token>'.")
        self.stdout.write(token)
