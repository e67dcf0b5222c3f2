"""Choosing the response's renderer without parsing `Accept` when there is nothing to choose."""

from __future__ import annotations

from rest_framework.negotiation import DefaultContentNegotiation

# What API clients send when they take whatever comes (curl, requests and most SDKs), and what
# DRF assumes when there is no Accept header.
ANYTHING = "*/*"


class SingleRendererNegotiation(DefaultContentNegotiation):
    """DRF's negotiation, short-cut for a view with one renderer and a request that takes it.

    Every API view but the schema's renders JSON only, and DRF parsed and ranked the Accept
    header of each request all the same: 3-4% of a single-event POST's instructions. The answer
    is the one DRF gives; any other request (another media type, `?format=`, several
    renderers) goes through DRF's own negotiation, 406 included.
    """

    def select_renderer(self, request, renderers, format_suffix=None):
        if len(renderers) == 1 and format_suffix is None:
            renderer = renderers[0]
            accept = request.META.get("HTTP_ACCEPT", ANYTHING)
            if accept in (ANYTHING, renderer.media_type) and (
                self.settings.URL_FORMAT_OVERRIDE not in request.query_params
            ):
                return renderer, renderer.media_type
        return super().select_renderer(request, renderers, format_suffix)
