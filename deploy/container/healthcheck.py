"""The image's HEALTHCHECK: GET /healthz of the monitor in this container; exit 0 when healthy.

Environment (all optional):
  MSGREACH_HEALTH_URL            default http://127.0.0.1:9910/healthz (https:// when the listener has TLS)
  MSGREACH_HEALTH_USER           basic-auth user, when the listener requires it
  MSGREACH_HEALTH_PASSWORD_FILE  file holding that user's password (or MSGREACH_HEALTH_PASSWORD_ENV:
                                 the name of a variable holding it)
Over https the certificate is not verified: the request never leaves the container's loopback.
"""

import base64
import os
import ssl
import sys
import urllib.error
import urllib.request


def main() -> int:
    url = os.environ.get("MSGREACH_HEALTH_URL", "http://127.0.0.1:9910/healthz")
    request = urllib.request.Request(url)
    user = os.environ.get("MSGREACH_HEALTH_USER")
    if user:
        password = ""
        if os.environ.get("MSGREACH_HEALTH_PASSWORD_FILE"):
            with open(os.environ["MSGREACH_HEALTH_PASSWORD_FILE"], encoding="utf-8") as handle:
                password = handle.read().strip()
        elif os.environ.get("MSGREACH_HEALTH_PASSWORD_ENV"):
            password = os.environ.get(os.environ["MSGREACH_HEALTH_PASSWORD_ENV"], "")
        request.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
    context = ssl._create_unverified_context() if url.startswith("https:") else None  # loopback only
    try:
        with urllib.request.urlopen(request, timeout=4, context=context) as response:
            print(response.read(200).decode("utf-8", "replace").strip())
            return 0 if response.status == 200 else 1
    except urllib.error.HTTPError as exc:
        print(f"unhealthy: HTTP {exc.code} {exc.read(200).decode('utf-8', 'replace').strip()}")
    except OSError as exc:
        print(f"unhealthy: {exc}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
