"""Scopes at the door of every view: which scope a request needs, and whether its key has it."""

from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from config.models import ApiKey
from config.scopes import Scope


def required_scopes(view, method: str) -> tuple[str, ...]:
    """The scopes of which a request needs one: reads need `read_scopes`, writes `write_scope`.

    A view declares `write_scope` (None: it takes no writes) and may widen `read_scopes`. A write
    to a view that declares none is refused, so a new endpoint is closed until someone decides.
    """
    if method.upper() in SAFE_METHODS:
        return tuple(getattr(view, "read_scopes", (Scope.READ,)))
    write_scope = getattr(view, "write_scope", None)
    return (write_scope,) if write_scope else ()


class HasScope(BasePermission):
    """An API key that holds a scope this request needs: 401 without a key, 403 without scope."""

    code = "insufficient_scope"

    def has_permission(self, request: Request, view) -> bool:
        api_key = request.auth
        if not isinstance(api_key, ApiKey):
            return False  # DRF answers 401: no (valid) key was sent
        if not hasattr(view, request.method.lower()):
            return True  # a method the view does not take: let DRF answer 405, not 403
        needed = required_scopes(view, request.method)
        if any(api_key.has_scope(scope) for scope in needed):
            return True
        self.message = (
            f"This API key lacks the scope for {request.method} {request.path}: it needs "
            f"{' or '.join(repr(str(scope)) for scope in needed) or 'a scope no key has'}, "
            f"and has {', '.join(repr(scope) for scope in api_key.scopes) or 'none'}."
        )
        return False
