"""What a round sends: the trainable weights (LoRA adapters and the task head) as numpy arrays.

The arrays travel in Flower's ArrayRecord; `payload_bytes` counts their serialized size.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np
import torch


def trainable_state(model: torch.nn.Module, lora_only: bool) -> OrderedDict[str, np.ndarray]:
    """Return the weights a client sends, by name, as float32 numpy arrays.

    With `lora_only`, the peft adapter state (adapters plus `modules_to_save` head);
    otherwise every parameter and buffer of the model (the full-model baseline).
    """
    if lora_only:
        from modelyard.methods.peft_methods import peft_module

        state = peft_module().get_peft_model_state_dict(model)
    else:
        state = model.state_dict()
    return OrderedDict(
        (name, tensor.detach().cpu().float().numpy().copy()) for name, tensor in state.items()
    )


def load_trainable_state(
    model: torch.nn.Module, arrays: dict[str, np.ndarray], lora_only: bool
) -> None:
    """Load `arrays` (as `trainable_state` returned them) into `model` in place."""
    tensors = {name: torch.from_numpy(np.asarray(value)) for name, value in arrays.items()}
    if lora_only:
        from modelyard.methods.peft_methods import peft_module

        peft_module().set_peft_model_state_dict(model, tensors)
    else:
        own = model.state_dict()
        model.load_state_dict({k: v.to(own[k].dtype) for k, v in tensors.items()}, strict=True)


def payload_bytes(arrays: Any) -> int:
    """Return the serialized bytes of a Flower ArrayRecord or of a dict of numpy arrays."""
    count = getattr(arrays, "count_bytes", None)
    if count is not None:
        return int(count())
    return int(sum(np.asarray(a).nbytes for a in arrays.values()))
