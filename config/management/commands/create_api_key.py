from __future__ import annotations

from django.core.management.base import BaseCommand

from config.apikeys import api_key_create


class Command(BaseCommand):
    help = "Create an API key for a client; the key is printed once, alone on the last line."

    def add_arguments(self, parser) -> None:
        parser.add_argument("name", help="Who will use the key, e.g. 'billing-service'.")

    def handle(self, *args, name: str, **options) -> None:
        issued = api_key_create(name=name)
        self.stderr.write(
            f"Created API key {issued.api_key.prefix} for {name!r}. It is stored hashed and "
            "cannot be shown again; send it as 'Authorization: Bearer <key>'."
        )
        self.stdout.write(issued.plaintext)
