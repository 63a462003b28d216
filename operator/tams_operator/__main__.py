"""`tams-operator`: run the operator against the cluster it finds as kubectl does (KUBECONFIG, else ~/.kube/config,
else the in-cluster service account)."""

from __future__ import annotations

import argparse
import time

import kopf

from .config import OperatorSettings


def seniority() -> int:
    """This replica's peering priority: the older a replica, the higher, so that the one working keeps working when
    another (re)starts; microseconds, so that two replicas never tie (Kopf pauses every replica of a tie)."""
    return -(time.time_ns() // 1000)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="tams-operator", description=__doc__)
    parser.add_argument("--namespace", action="append", default=[], help="watch only these (default: all)")
    parser.add_argument("--liveness", default="http://0.0.0.0:8080/healthz", help="liveness endpoint URL")
    args = parser.parse_args(argv)
    from . import main as handlers  # noqa: F401  (importing registers the handlers)

    config = OperatorSettings()
    kopf.run(
        standalone=not config.peering,
        peering_name=config.peering or None,
        priority=seniority(),
        settings=peered(kopf.OperatorSettings(), config),
        clusterwide=not args.namespace,
        namespaces=args.namespace,
        liveness_endpoint=args.liveness,
    )


def peered(settings: kopf.OperatorSettings, config: OperatorSettings) -> kopf.OperatorSettings:
    """Kopf's peering as configured: with a peering name, replicas pause while an older one runs, and a peering
    object that is missing stops the operator rather than letting two replicas work at once."""
    if config.peering:
        settings.peering.mandatory = True
        settings.peering.lifetime = config.peering_lifetime
        settings.peering.stealth = True  # no log line per keep-alive
    return settings


if __name__ == "__main__":
    main()
