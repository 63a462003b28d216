"""Which image a TamsStore's pods run, and how an operator upgrade reaches the stores: a store that names no image
follows the operator's (`TAMS_OPERATOR_DEFAULT_IMAGE`, the release the operator came with), one store at a time
(spec.updatePolicy Automatic), or at its next spec change (Manual). A store whose move does not become available
holds the others back, as a canary: its conditions say why; pinning its image (spec.image) lets the others go."""

from __future__ import annotations

from dataclasses import dataclass

from .spec import TamsStoreSpec

StoreKey = tuple[str, str]  # (namespace, name)


def follows_operator(spec: TamsStoreSpec, running: str | None, operator_image: str) -> bool:
    """The store names no image and runs another than the operator's: it has a move ahead."""
    return spec.image is None and running is not None and running != operator_image


def image_to_run(
    spec: TamsStoreSpec, running: str | None, operator_image: str, spec_changed: bool, admitted: bool
) -> str:
    """The image for the store's pods: its own; else the operator's, unless it runs another and may not move yet
    (Manual until its spec changes; Automatic until the rollout gate admits it)."""
    if spec.image:
        return spec.image
    if not follows_operator(spec, running, operator_image):
        return operator_image
    moves = spec_changed if spec.update_policy == "Manual" else admitted
    return operator_image if moves else running or operator_image


@dataclass(slots=True)
class RolloutGate:
    """One store at a time moves to the operator's image; the next may start `delay` seconds after the last one's
    rollout became available. In the operator's memory: a restarted operator starts the round again, and the stores
    already moved have nothing left to do."""

    delay: float
    holder: StoreKey | None = None
    free_after: float = 0.0

    def admit(self, store: StoreKey, now: float) -> bool:
        if self.holder is None and now >= self.free_after:
            self.holder = store
        return self.holder == store

    def release(self, store: StoreKey, now: float) -> None:
        if self.holder == store:
            self.holder, self.free_after = None, now + self.delay
