"""schemathesis hooks for tests/fuzz/run.sh (loaded through SCHEMATHESIS_HOOKS).

An upgraded connection is never reused for HTTP. A schema-valid `GET /ws`
is a websocket handshake, which livefeed answers `101 Switching
Protocols`: from then on the connection speaks websocket (RFC 9110
section 15.2.2). schemathesis' HTTP client (requests over urllib3) knows
nothing of upgrades: it takes the 101 for a finished response with an
empty body and puts the connection back in its pool, so the next request
it sends there is read by livefeed as a websocket frame, and answered with
a websocket close (1002, protocol error) that the client cannot parse.
Here the client closes such a connection instead, as any client that
does not go on to speak the new protocol must; the server is unchanged.
"""

import requests.adapters

_build_response = requests.adapters.HTTPAdapter.build_response


def _build_response_closing_upgrades(self, req, resp):
    response = _build_response(self, req, resp)
    if response.status_code == 101:
        # The pool gets the connection back closed, and opens a fresh one
        # for the next request.
        connection = getattr(resp, "connection", None)
        if connection is not None:
            connection.close()
    return response


requests.adapters.HTTPAdapter.build_response = _build_response_closing_upgrades
