"""The gateway's languages: complete catalogues, a label for every code, the choice of
language per request, and pages that speak it."""

import datetime as dt

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po
from werkzeug.test import EnvironBuilder

from concord_contracts.codes import REFERENCE_LISTS, AgencyStatus, Organisation, Role
from gateway import i18n, pages
from gateway.auth import Principal
from gateway.web import Exchange, exchange_for

pytestmark = pytest.mark.unit

GATEWAY = i18n.TRANSLATIONS_DIR.parent
TRANSLATED = ("fr", "es")


def catalog(language):
    with i18n.po_path(language).open("rb") as handle:
        return read_po(handle, locale=language)


def template():
    with (i18n.TRANSLATIONS_DIR / "messages.pot").open("rb") as handle:
        return read_po(handle)


def keys(messages):
    return {(m.context, m.id if isinstance(m.id, str) else tuple(m.id)) for m in messages if m.id}


def test_the_template_holds_every_message_in_the_sources():
    with (GATEWAY / "babel.cfg").open() as handle:
        method_map, options_map = parse_mapping_cfg(handle)
    found = {
        (context, msgid if isinstance(msgid, str) else tuple(msgid))
        for _file, _line, msgid, _comments, context in extract_from_dir(
            str(GATEWAY), method_map, options_map
        )
    }
    assert found, "nothing extracted: is babel.cfg right?"
    assert found == keys(template()), "run pybabel extract (see babel.cfg) and update the .po"


@pytest.mark.parametrize("language", TRANSLATED)
def test_every_message_has_a_translation(language):
    translations = catalog(language)
    assert keys(translations) >= keys(template())
    for message in translations:
        if not message.id:
            continue
        assert not message.fuzzy, message.id
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        assert strings and all(s.strip() for s in strings), f"{language}: {message.id!r}"


@pytest.mark.parametrize("language", ("en", *TRANSLATED))
def test_placeholders_survive_translation(language):
    problems = [(message.id, errors) for message, errors in catalog(language).check()]
    assert problems == []


class Recorder:
    def __init__(self):
        self.seen = set()

    def gettext(self, message):
        return message

    def pgettext(self, context, message):
        self.seen.add((context, message))
        return message


def test_every_code_has_a_label():
    labels = i18n.code_labels(Recorder())
    for name, enum in REFERENCE_LISTS.items():
        assert set(labels[name]) == {code.value for code in enum}, name
    assert set(labels["agency_statuses"]) == {code.value for code in AgencyStatus}
    assert set(labels["roles"]) == {code.value for code in Role}
    assert set(labels["organisations"]) == {code.value for code in Organisation}


@pytest.mark.parametrize("language", TRANSLATED)
def test_every_label_is_translated(language):
    recorder = Recorder()
    i18n.code_labels(recorder)
    translated = {(m.context, m.id): m.string for m in catalog(language) if isinstance(m.id, str)}
    for key in recorder.seen:
        assert translated.get(key, "").strip(), f"{language}: {key}"
    for name, enum in REFERENCE_LISTS.items():
        for code in enum:
            label = i18n.label(language, name, code.value)
            assert label and label != code.value


def test_labels_differ_by_context_where_english_is_the_same():
    assert i18n.label("fr", "urgencies", "high") == "Élevée"
    assert i18n.label("es", "sexes", "other") == "Otro"
    assert i18n.label("fr", "channels", "social_services") == "Services sociaux"


def test_a_code_from_a_newer_service_shows_as_itself():
    assert i18n.label("fr", "channels", "carrier_pigeon") == "carrier_pigeon"


def request(query="", headers=None, cookies=None):
    builder = EnvironBuilder(path="/", query_string=query, headers=headers or {})
    environ = builder.get_environ()
    if cookies:
        environ["HTTP_COOKIE"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
    from werkzeug.wrappers import Request

    return Request(environ)


@pytest.mark.parametrize(
    ("query", "cookie", "accept", "expected"),
    [
        ("lang=es", "fr", "fr", ("es", True)),
        ("", "fr", "es", ("fr", False)),
        ("", None, "es-MX,es;q=0.9,en;q=0.5", ("es", False)),
        ("", None, "de-DE,fr;q=0.5", ("fr", False)),
        ("", None, "de", ("en", False)),
        ("lang=xx", "zz", "", ("en", False)),
    ],
)
def test_the_language_is_asked_then_remembered_then_negotiated(query, cookie, accept, expected):
    cookies = {i18n.LANGUAGE_COOKIE: cookie} if cookie else None
    headers = {"Accept-Language": accept} if accept else None
    assert i18n.negotiate(request(query, headers, cookies)) == expected


def test_instants_are_written_the_local_way_in_utc():
    instant = "2026-03-05T14:07:00+01:00"
    assert i18n.format_instant(instant, "en") == "Mar 5, 2026, 1:07:00\u202fPM UTC"
    assert i18n.format_instant(dt.datetime(2026, 3, 5, 13, 7, tzinfo=dt.UTC), "fr").startswith(
        "5 mars 2026"
    )


def test_the_waiting_list_page_speaks_the_chosen_language():
    ex = exchange_for(request("lang=fr"))
    ex.principal = Principal(
        user_id="6f1c8a0e-2b7d-4c1e-9a53-0d2f6b8e4a17",
        username="social",
        display_name="Demo social worker",
        role=Role.social_worker,
        agency=Organisation.social_services,
        jti="abc",
        expires_at=dt.datetime.now(dt.UTC),
    )
    ex.csrf_token = "nonce.signature"
    item = {
        "coordination_id": "0c6f3f59-44f5-4a0e-8b0e-3c9f8a3d2e11",
        "received_at": "2026-03-05T13:07:00+00:00",
        "channel": "helpline",
        "categories": ["grooming", "sextortion"],
        "urgency": "immediate_danger",
        "status": "pending_acceptance",
        "since": "2026-03-05T13:07:00+00:00",
    }
    page = {"items": [item], "next_cursor": None}
    html = pages.waiting_list(ex, lambda query: page).get_data(as_text=True)
    assert '<html lang="fr">' in html
    for text in ("Liste d'attente", "Ligne d&#39;écoute", "Danger immédiat", "Accepter"):
        assert text in html
    assert 'action="/intake/0c6f3f59-44f5-4a0e-8b0e-3c9f8a3d2e11/accept"' in html
    assert 'value="nonce.signature"' in html
    assert 'href="#main"' in html and 'id="main"' in html


def test_a_page_without_a_session_has_no_account_area():
    ex = Exchange(request(), "c1", "es")
    html = pages.render(ex, "signin.html", username="", error=None).get_data(as_text=True)
    assert "Iniciar sesión" in html
    assert "/signout" not in html
    assert '<label for="username">' in html and '<label for="password">' in html
