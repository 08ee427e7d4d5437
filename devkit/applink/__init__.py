"""Heroku AppLink in the dev kit: a service-mesh stand-in, the AppLink API's authorizations, the spec file.

* :mod:`devkit.applink.api` — the add-on's API as far as Offload uses it (``/invocations/authentication``
  for the mesh, ``/authorizations/<developer_name>`` for workers), backed by the org emulator.
* :mod:`devkit.applink.mesh` — ``heroku-applink-service-mesh <app command>``: what the buildpack's binary
  does for Offload (authenticate, inject ``x-client-context``, bypass routes, start the app on ``APP_PORT``).
* :mod:`devkit.applink.spec` — writes ``applink-openapi.yaml`` (``python -m devkit.applink.spec``).
"""
