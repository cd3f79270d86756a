"""flopcast.calibration.zoo: models measured for calibration and used as static-analysis test models.

Importing the package registers every model in :data:`ZOO`; ``ZOO[name].build()`` gives the
calibration-size model.
"""

from __future__ import annotations

from flopcast.calibration.zoo import (  # noqa: F401  (imported to register their models)
    cnn,
    conv1d,
    decode,
    full_size,
    mlp,
    mobilenet,
    published,
    recsys,
    resnet,
    rnn,
    transformer_decoder,
    transformer_encoder,
    unet,
    vgg,
    vit,
)
from flopcast.calibration.zoo.registry import ZOO, ZooModel, get, names, register, register_zoo_model

__all__ = ["ZOO", "ZooModel", "get", "names", "register", "register_zoo_model"]
