"""torch.hub entry points: ``torch.hub.load("<repo dir>", "<model name>", source="local")``."""
dependencies = ["torch"]

import zoo as _zoo


def _entry(name: str):
    def load(pretrained: bool = True, **kwargs):
        return _zoo.create_model(name, pretrained=pretrained, **kwargs)

    load.__name__ = name
    load.__doc__ = f"{name} from ibisc-zoo ({_zoo.get_entry(name).paper}); pretrained weights are sha256-checked."
    return load


for _name in _zoo.list_models(pretrained=True):
    globals()[_name] = _entry(_name)
