"""Which child events the operator rolls up into its TamsStore: only those that can change Available."""

from __future__ import annotations

from typing import Any

from tams_operator.stores import news


def pod(phase: str, ready: bool, waiting: str | None = None, **metadata: Any) -> dict[str, Any]:
    state = {"waiting": {"reason": waiting}} if waiting else {"running": {}}
    status = {"phase": phase, "containerStatuses": [{"name": "tams-api", "ready": ready, "state": state}]}
    return {"kind": "Pod", "metadata": {"namespace": "media", "name": "news-tams-abc", **metadata}, "status": status}


def test_only_changes_that_matter_to_availability_are_news() -> None:
    seen: dict[tuple[str, str, str], tuple[Any, ...]] = {}
    assert news(seen, "ADDED", pod("Pending", False))
    assert not news(seen, "MODIFIED", pod("Pending", False, annotations={"x": "y"})), "an annotation is no news"
    assert news(seen, "MODIFIED", pod("Pending", False, waiting="ImagePullBackOff"))
    assert news(seen, "MODIFIED", pod("Running", True))
    assert not news(seen, "MODIFIED", pod("Running", True))
    assert news(seen, "DELETED", pod("Running", True)) and not seen, "a deletion is news, and forgotten"


def test_a_deployment_is_news_when_its_rollout_moves() -> None:
    seen: dict[tuple[str, str, str], tuple[Any, ...]] = {}

    def deployment(generation: int, **status: int) -> dict[str, Any]:
        metadata = {"namespace": "media", "name": "news-tams", "generation": generation}
        return {"kind": "Deployment", "metadata": metadata, "status": status}

    assert news(seen, "ADDED", deployment(1, observedGeneration=1, replicas=1))
    assert not news(seen, "MODIFIED", deployment(1, observedGeneration=1, replicas=1))
    assert news(seen, "MODIFIED", deployment(1, observedGeneration=1, replicas=1, availableReplicas=1))
    assert news(seen, "MODIFIED", deployment(2, observedGeneration=1, replicas=1, availableReplicas=1))
