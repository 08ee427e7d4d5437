"""Offload's dev kit: everything that runs Offload on one machine, and nothing Heroku installs.

* :mod:`devkit.org`: a local Salesforce org emulator that speaks the real wire formats;
* :mod:`devkit.devstack`: Redis, the emulator and the Procfile's web and worker processes together;
* :mod:`devkit.demo`: ``offload demo``, the main job end to end;
* :mod:`devkit.embedded_redis`: a Redis for machines that have none;
* :mod:`devkit.cli`: the ``offload dev``, ``offload org`` and ``offload demo`` commands.

It needs the ``dev`` extra (``pip install 'offload[dev]'``). The product (``services``, ``workers``)
never imports it; the ``offload`` command finds these commands through the ``offload.commands``
entry point group.
"""
