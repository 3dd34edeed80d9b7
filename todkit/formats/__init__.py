"""File formats: ``mindir`` (MindSpore's protobuf model, what export writes and the converter
reads) and ``ms`` (MindSpore Lite's FlatBuffers model, what the device runtime loads)."""
