"""The `.ms` (MindSpore Lite FlatBuffers model) codec: ``read`` -> IR, ``write`` IR -> file.

Device-side code: imports only NumPy, flatbuffers, the standard library and todkit's core, ir
and opset packages.
"""

from todkit.formats.ms.read import MsModel, map_file, read
from todkit.formats.ms.write import atomic_write, dumps, ms_path, patch_tensor_data, write

__all__ = ["MsModel", "atomic_write", "dumps", "map_file", "ms_path", "patch_tensor_data", "read",
           "write"]
