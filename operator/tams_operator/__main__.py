"""`tams-operator`: run the operator against the cluster it finds (in-cluster service account, else KUBECONFIG)."""

from __future__ import annotations

import argparse

import kopf


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="tams-operator", description=__doc__)
    parser.add_argument("--namespace", action="append", default=[], help="watch only these (default: all)")
    parser.add_argument("--liveness", default="http://0.0.0.0:8080/healthz", help="liveness endpoint URL")
    args = parser.parse_args(argv)
    from . import main as handlers  # noqa: F401  (importing registers the handlers)

    # One replica with the Recreate strategy: Kopf has no leader election, so no peering either.
    kopf.run(
        standalone=True,
        clusterwide=not args.namespace,
        namespaces=args.namespace,
        liveness_endpoint=args.liveness,
    )


if __name__ == "__main__":
    main()
