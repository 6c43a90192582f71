"""`modelkit.layers`: every layer class, importable by its Keras name."""

from ..engine.base_layer import Layer  # noqa: F401
from ..engine.input_layer import Input, InputLayer  # noqa: F401
from ..engine.input_spec import InputSpec  # noqa: F401
from .core import (Activation, ActivityRegularization, Dense, Dropout, Flatten,  # noqa: F401
                   Identity, Lambda, Masking, Permute, RepeatVector, Rescaling, Reshape)
from .serialization import (LAYERS, custom_object_scope, deserialize,  # noqa: F401
                            register_layer, serialize)
from ..engine.backend_op_layer import BackendOp  # noqa: F401

register_layer(InputLayer)
register_layer(BackendOp)

# The layer catalogue: each module lists its public layers in __all__.
from .convolutional import *  # noqa: F401,F403,E402
from .reshaping import *  # noqa: F401,F403,E402
from .pooling import *  # noqa: F401,F403,E402
from .recurrent import *  # noqa: F401,F403,E402
from .convolutional_recurrent import *  # noqa: F401,F403,E402
from .embeddings import *  # noqa: F401,F403,E402
from .wrappers import *  # noqa: F401,F403,E402
from .merge import *  # noqa: F401,F403,E402
from .normalization import *  # noqa: F401,F403,E402
from .attention import *  # noqa: F401,F403,E402
from .feature_normalization import *  # noqa: F401,F403,E402
from .noise import *  # noqa: F401,F403,E402
from .advanced_activations import *  # noqa: F401,F403,E402
from .legacy_layers import *  # noqa: F401,F403,E402
from .legacy_merge import *  # noqa: F401,F403,E402
from .onnx_op import *  # noqa: F401,F403,E402
from .image_preprocessing import *  # noqa: F401,F403,E402
from .locally_connected import *  # noqa: F401,F403,E402
