from __future__ import annotations

from django.utils.dateparse import parse_datetime
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import CursorPagination

from config.api.filters import single_value


class CreatedCursorPagination(CursorPagination):
    """Newest first (or oldest first with `?ordering=created_at`); a cursor stays correct while
    new rows arrive, unlike page numbers.

    Bad paging input is a 400 naming the parameter: DRF would silently use the default page size
    for `?page_size=abc`, answer 404 for a garbled cursor, and 500 for a well-formed cursor whose
    position is not a time.
    """

    ordering = ("-created_at", "-id")
    page_size_query_param = "page_size"
    max_page_size = 500
    cursor_query_description = "Where the page starts: the `next` or `previous` link's cursor."
    page_size_query_description = (
        "How many results per page (default HERALD_PAGE_SIZE, at most 500)."
    )

    def get_page_size(self, request) -> int:
        raw = single_value(request, self.page_size_query_param)
        if raw is None:
            return self.page_size
        if not raw.isdigit() or not 1 <= int(raw) <= self.max_page_size:
            raise ValidationError(
                {
                    self.page_size_query_param: [
                        f"Must be a whole number from 1 to {self.max_page_size}."
                    ]
                }
            )
        return int(raw)

    def decode_cursor(self, request):
        single_value(request, self.cursor_query_param)
        try:
            cursor = super().decode_cursor(request)
        except NotFound as exc:
            raise ValidationError({self.cursor_query_param: [self.invalid_cursor_message]}) from exc
        if cursor is not None and cursor.position is not None:
            try:
                valid = parse_datetime(cursor.position) is not None
            except ValueError:
                valid = False
            if not valid:
                raise ValidationError({self.cursor_query_param: [self.invalid_cursor_message]})
        return cursor

    def get_schema_operation_parameters(self, view) -> list[dict]:
        cursor, page_size = super().get_schema_operation_parameters(view)
        page_size["schema"] = {
            "type": "integer",
            "minimum": 1,
            "maximum": self.max_page_size,
        }
        return [cursor, page_size]
