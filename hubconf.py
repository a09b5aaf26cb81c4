"""torch.hub entry points for every registered model: ``torch.hub.load("<repo dir>", "<name>", source="local")``.

``pretrained`` defaults to True for the models that ship weights and False for the others; asking for weights
a model does not have raises, naming the models that have them and the recipe that trains this one.
"""
dependencies = ["torch"]

import zoo as _zoo


def _entry(name: str):
    entry = _zoo.get_entry(name)

    def load(pretrained: bool | None = None, **kwargs):
        if pretrained is None:
            pretrained = entry.weights is not None
        if pretrained and entry.weights is None:
            raise ValueError(
                f"{name} has no pretrained weights in ibisc-zoo; models with weights: "
                f"{', '.join(_zoo.list_models(pretrained=True))}. Build it untrained with pretrained=False, or train it "
                f"with `{entry.cfg.get('recipe', 'zoo fit --config configs/...')}` and load the checkpoint with zoo.load(path)."
            )
        return _zoo.create_model(name, pretrained=pretrained, **kwargs)

    load.__name__ = name
    has = "shipped weights (sha256-checked), pretrained=True by default" if entry.weights else "no shipped weights"
    load.__doc__ = f"{name} from ibisc-zoo ({entry.paper}); {has}. Card: zoo.get_entry({name!r}).cfg."
    return load


for _name in _zoo.list_models():
    globals()[_name] = _entry(_name)
