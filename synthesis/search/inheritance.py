"""How a grown child inherits its parent's trained weights: copied where shapes allow, then jittered.
"""

from __future__ import annotations

import torch

from synthesis.models import ArchSpec

JITTER = 0.03  # noise std as a fraction of each inherited tensor's std (the progressive seed's value)


def block_names(spec: ArchSpec) -> list[str]:
    """State-dict prefixes of every block in order (a maxpool takes index 0 of its stage)."""
    offset = 1 if spec.downsample == "maxpool" else 0
    return [f"stages.{si}.{offset + bi}." for si, st in enumerate(spec.stages) for bi in range(st.depth)]


def inherit(parent: torch.nn.Module, parent_spec: ArchSpec, child: torch.nn.Module, child_spec: ArchSpec) -> dict[str, str]:
    """Copy the parent's weights into the child where shapes allow (see the module docstring).

    Returns, for every child tensor, where its values came from: "parent", "previous block" or "init".
    """
    p_state, c_state = parent.state_dict(), child.state_dict()
    new_blocks = [n for n in block_names(child_spec) if n not in set(block_names(parent_spec))]
    previous = {nb: block_names(child_spec)[block_names(child_spec).index(nb) - 1] for nb in new_blocks}
    origin = {}
    for name, tensor in c_state.items():
        block = next((nb for nb in new_blocks if name.startswith(nb)), None)
        if block is None and name in p_state and p_state[name].shape == tensor.shape:
            tensor.copy_(p_state[name])
            origin[name] = "parent"
        elif block is not None:
            src = previous[block] + name[len(block):]
            if src in p_state and p_state[src].shape == tensor.shape:
                tensor.copy_(p_state[src])
                origin[name] = "previous block"
            else:
                origin[name] = "init"
        else:
            origin[name] = "init"
    return origin


@torch.no_grad()
def jitter_(model: torch.nn.Module, scale: float, generator: torch.Generator) -> None:
    """Add N(0, (scale·std(p))²) to every parameter tensor p with more than one distinct value."""
    for p in model.parameters():
        if p.numel() > 1:
            std = float(p.std())
            if std > 0:
                # Drawn from the (CPU) generator, then moved: the same jitter on every device.
                noise = torch.randn(p.shape, generator=generator, dtype=p.dtype, device=generator.device)
                p.add_(noise.to(p.device) * (scale * std))
