"""The WSGI entry point gunicorn loads (``services.receiver.wsgi:app``)."""

from services.receiver import create_app

app = create_app()
