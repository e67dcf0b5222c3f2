"""The short-cut negotiation answers as DRF's own does."""

from __future__ import annotations

import pytest
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer, StaticHTMLRenderer
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from config.api.negotiation import SingleRendererNegotiation

ACCEPTS = [
    None,
    "",
    "*/*",
    "application/json",
    "application/json; indent=4",
    "application/*",
    "text/html",
    "application/xml",
    "text/html, application/json;q=0.9",
    "application/xml;q=1, */*;q=0.1",
]
RENDERER_SETS = [
    [JSONRenderer()],
    [StaticHTMLRenderer()],
    [JSONRenderer(), BrowsableAPIRenderer()],
]


def _choice(negotiation, request, renderers, format_suffix=None):
    try:
        renderer, media_type = negotiation.select_renderer(request, renderers, format_suffix)
    except Exception as exc:  # the kind of refusal is what is compared
        return type(exc)
    return type(renderer), media_type


@pytest.mark.parametrize("renderers", RENDERER_SETS, ids=lambda r: "+".join(map(repr, r)))
@pytest.mark.parametrize("accept", ACCEPTS)
@pytest.mark.parametrize("query", ["", "?format=json", "?format=api"])
def test_same_choice_as_drf(accept, renderers, query):
    headers = {} if accept is None else {"HTTP_ACCEPT": accept}
    request = Request(APIRequestFactory().get(f"/api/v1/events{query}", **headers))

    ours = _choice(SingleRendererNegotiation(), request, renderers)

    assert ours == _choice(DefaultContentNegotiation(), request, renderers)


def test_a_format_suffix_goes_through_drf():
    request = Request(APIRequestFactory().get("/api/v1/events"))

    assert _choice(SingleRendererNegotiation(), request, [JSONRenderer()], "json") == _choice(
        DefaultContentNegotiation(), request, [JSONRenderer()], "json"
    )


@pytest.mark.django_db
def test_the_api_still_refuses_what_it_cannot_render(api):
    response = api.get("/api/v1/events", HTTP_ACCEPT="application/xml")

    assert response.status_code == 406
    assert response["Content-Type"] == "application/json"


@pytest.mark.django_db
def test_the_api_answers_json_to_clients_that_take_anything(api):
    response = api.get("/api/v1/events", HTTP_ACCEPT="*/*")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
