"""`redact_url`: a store's URL as messages and logs may show it."""

from __future__ import annotations

import re
from typing import Final

#: What stands for a secret.
HIDDEN: Final = "***"

#: ``password=...`` in a libpq keyword/value string: a quoted value (with
#: backslash escapes) or a bare word.
_KEYWORD_PASSWORD: Final = re.compile(r"(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'?|\S*)")


def redact_url(url: str) -> str:
    """Return ``url`` with its secrets replaced by ``***``, for messages and logs.

    Hidden: the password of the user information (``scheme://user:secret@host``),
    the whole user information of a Redis URL without a colon (there
    ``redis://secret@host`` is a password alone), and the value of every
    ``password`` parameter of the query. A libpq keyword/value string
    (``host=db password=secret``) loses its ``password`` value. The URL is
    split as the stores split it: the query starts at the first ``?``.
    """
    scheme, separator, rest = url.partition("://")
    if not separator:
        return _KEYWORD_PASSWORD.sub(rf"\g<1>{HIDDEN}", url)
    rest, hash_sign, fragment = rest.partition("#")
    rest, question, query = rest.partition("?")
    userinfo, at, hosts = rest.rpartition("@")
    if at:
        user, colon, _ = userinfo.partition(":")
        if colon:
            userinfo = f"{user}:{HIDDEN}"
        elif scheme.lower().startswith("redis"):
            userinfo = HIDDEN
        rest = f"{userinfo}@{hosts}"
    if question:
        query = "&".join(_redact_parameter(part) for part in query.split("&"))
    return f"{scheme}://{rest}{question}{query}{hash_sign}{fragment}"


def _redact_parameter(parameter: str) -> str:
    key, equals, _ = parameter.partition("=")
    if equals and key.strip().lower() == "password":
        return f"{key}={HIDDEN}"
    return parameter
