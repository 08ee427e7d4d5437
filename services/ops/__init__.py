"""What operators use, without Flask: the jobs model (find, show, requeue, purge), ``offload jobs``, the
workers' Redis counters and the ``/metrics`` collectors. The dashboard and ``/metrics`` routes in
:mod:`services.receiver` are thin layers over this package."""
