"""The WSGI application for a production server: ``gunicorn label_studio_cortx.wsgi`` (README "Production server").

Label Studio with the plugin's settings module, unless the environment names another one on purpose, with media
links (``media_gateway``) served in front of it. The settings' WSGI_APPLICATION names it, so Django's development
server (``label-studio-cortx start``) runs it too.
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "label_studio_cortx.settings")

application = get_wsgi_application()

# Imported once Django is set up (the gateway uses the models): media links go past Label Studio's middleware.
from label_studio_cortx.media_gateway import wrap  # noqa: E402

application = wrap(application)
