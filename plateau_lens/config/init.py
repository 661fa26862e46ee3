"""The ``[init]`` section: component-wise / optimal-init training (which components are
copied from a reference checkpoint, which are frozen at their random init)."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import Field, field_validator, model_validator

from .components import COMPONENTS
from .base import Allowed, StrictModel

ComponentList = Annotated[tuple[str, ...], Field(strict=False),
                          Allowed(f"a list of component names from {sorted(COMPONENTS)}")]


class InitConfig(StrictModel):
    """Component-wise / optimal-init training: copy ``components`` from a reference
    ``checkpoint`` (frozen if ``freeze``) and freeze ``freeze_at_init`` at their random init."""

    section: ClassVar[str] = "init"

    checkpoint: str = ""
    components: ComponentList = ()
    freeze: bool = True
    freeze_at_init: ComponentList = ()

    @field_validator("components", "freeze_at_init")
    @classmethod
    def _known_components(cls, value: tuple[str, ...], info) -> tuple[str, ...]:
        unknown = [c for c in value if c not in COMPONENTS]
        if unknown:
            raise ValueError(f"init.{info.field_name}: unknown component(s) {unknown}; "
                             f"allowed: {sorted(COMPONENTS)}")
        return value

    @model_validator(mode="after")
    def _components_need_a_checkpoint(self) -> "InitConfig":
        if self.components and not self.checkpoint:
            raise ValueError("init.components needs init.checkpoint (a reference checkpoint path)")
        return self

    @property
    def active(self) -> bool:
        return bool(self.components or self.freeze_at_init)
