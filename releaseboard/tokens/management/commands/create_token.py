"""`manage.py create_token USER --scope read --scope branches --days 30 --name ci`:
make a personal access token for scripted set-ups; the token alone is the last line."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from releaseboard.tokens.models import Scope
from releaseboard.tokens.service import MAX_DAYS, TokenRefused, create_token


class Command(BaseCommand):
    help = "Create a personal access token for a user and print it (shown only this once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--scope", action="append", choices=Scope.values, required=True, dest="scopes")
        parser.add_argument("--days", type=int, default=30, help=f"days until it expires (1 to {MAX_DAYS})")
        parser.add_argument("--name", required=True, help="where the token is used, e.g. ci")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            user = get_user_model().objects.get(username=options["username"])
        except get_user_model().DoesNotExist:
            raise CommandError(f"There is no user named {options['username']!r}.") from None
        try:
            new = create_token(user, name=options["name"], scopes=options["scopes"], days=options["days"])
        except TokenRefused as exc:
            raise CommandError(exc.message) from None
        self.stderr.write(
            f"Token {new.token.name!r} for {user.get_username()} with scopes {', '.join(new.token.scopes)}, "
            f"expires {new.token.expires_at:%Y-%m-%d}. It is shown only now:"
        )
        self.stdout.write(new.raw)
