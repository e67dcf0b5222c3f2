from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from config.apikeys import api_key_create
from config.scopes import ALL_SCOPES


class Command(BaseCommand):
    help = "Create an API key for a client; the key is printed once, alone on the last line."

    def add_arguments(self, parser) -> None:
        parser.add_argument("name", help="Who will use the key, e.g. 'billing-service'.")
        parser.add_argument(
            "--scope",
            action="append",
            dest="scopes",
            metavar="SCOPE",
            help=f"Grant this scope; repeat for several ({', '.join(ALL_SCOPES)}). Without "
            "--scope the key gets every scope.",
        )

    def handle(self, *args, name: str, scopes: list[str] | None, **options) -> None:
        try:
            issued = api_key_create(name=name, scopes=scopes or ALL_SCOPES)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stderr.write(
            f"Created API key {issued.api_key.prefix} for {name!r} with scopes "
            f"{', '.join(issued.api_key.scopes)}. It is stored hashed and cannot be shown again; "
            "send it as 'Authorization: Bearer <key>'."
        )
        self.stdout.write(issued.plaintext)
