"""Workload for the `django` environment: a French translation from Django's catalogs.

Configures Django with LANGUAGE_CODE='fr' and USE_I18N, activates French, and checks that
core and admin strings (and a DRF validation message) come out translated, not in English.
Exit 0 on success.
"""

# ruff: noqa: E402 - the sys.path guard below must run before the imports it protects.
import os
import sys

# This file is named after the distribution it exercises (django.py, torch.py, ...): drop its
# own directory from sys.path so `import django` finds the installed package, not this script.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

import django
from django.conf import settings


def main() -> int:
    settings.configure(
        DEBUG=False,
        LANGUAGE_CODE="fr",
        USE_I18N=True,
        INSTALLED_APPS=[
            "django.contrib.admin",
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "django.contrib.messages",
            "rest_framework",
        ],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        SECRET_KEY="bench",
    )
    django.setup()
    from django.utils import translation
    from django.utils.translation import gettext
    from rest_framework import serializers

    translation.activate("fr")
    log_in = gettext("Log in")
    admin = gettext("Site administration")
    assert log_in != "Log in" and admin != "Site administration", (log_in, admin)

    class Point(serializers.Serializer):
        x = serializers.IntegerField()

    s = Point(data={})
    assert not s.is_valid()
    required = str(s.errors["x"][0])
    assert required != "This field is required.", required
    print("django ok", log_in, "|", admin, "|", required)
    return 0


if __name__ == "__main__":
    sys.exit(main())
