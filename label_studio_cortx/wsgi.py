"""The WSGI application for a production server: ``gunicorn label_studio_cortx.wsgi`` (README "Production server").

Label Studio with the plugin's settings module, unless the environment names another one on purpose.
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "label_studio_cortx.settings")

application = get_wsgi_application()
