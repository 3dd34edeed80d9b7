"""converter_lite's flags, parsed as MindSpore Lite's FlagParser parses them.

Syntax is strictly ``--name=value``; a word without ``--`` ends parsing with
``Failed: flag <word> is not valid.``, an unknown name gives ``<name> is not a valid flag``,
a repeated one ``Failed: already parsed flag: <name>``, and a bare ``--name`` of a
non-boolean flag ``No value provided for non-boolean type: <name>``. The usage text lists
``--help`` first, then every other flag in sorted order, as the real tool prints it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# name -> (help text, default). Help texts follow the real tool's registrations.
FLAGS: dict[str, tuple[str, str]] = {
    "fmk": ("Input model framework type. TF | TFLITE | CAFFE | MINDIR | ONNX | OM | PYTORCH | "
            "MSLITE. When set MSLITE, micro must be enabled. When set OM, device must be set to "
            "Ascend.", ""),
    "modelFile": ("Input model file. TF: *.pb | TFLITE: *.tflite | CAFFE: *.prototxt | MINDIR: "
                  "*.mindir | ONNX: *.onnx | MSLITE: *.ms | OM: *.om", ""),
    "outputFile": ("Output model file path. Will add .ms automatically", ""),
    "weightFile": ("Input model weight file. Needed when fmk is CAFFE. CAFFE: *.caffemodel", ""),
    "inputDataType": ("Data type of input tensors, default is same with the type defined in "
                      "model. FLOAT16 | FLOAT | INT8 | UINT8 | INT32 | INT64 | DEFAULT", "DEFAULT"),
    "outputDataType": ("Data type of output and output tensors, default is same with the type "
                       "defined in model. FLOAT16 | FLOAT | INT8 | UINT8 | DEFAULT", "DEFAULT"),
    "configFile": ("Configuration for post-training, offline split op to parallel,disable op "
                   "fusion ability and set plugin so path", ""),
    "fp16": ("Serialize const tensor in Float16 data type, only effective for const tensor in "
             "Float32 data type. on | off", "off"),
    "trainModel": ("whether the model is going to be trained on device. true | false", "false"),
    "inputShape": ("Set the dimension of the model input, the order of input dimensions is "
                   "consistent with the original model. For some models, the model structure "
                   "can be further optimized, but the transformed model may lose the "
                   "characteristics of dynamic shape. e.g. \"inTensor1:1,32,32,32;"
                   "inTensor2:1,1,32,32,4\"", ""),
    "inputDataFormat": ("Assign the input format of exported model. Only Valid for "
                        "4-dimensional input. NHWC | NCHW", ""),
    "outputDataFormat": ("Assign the output format of exported model. Only Valid for "
                         "4-dimensional output. NHWC | NCHW", ""),
    "decryptKey": ("The key used to decrypt the file, expressed in hexadecimal characters. "
                   "Only valid when fmkIn is 'MINDIR'", ""),
    "decryptMode": ("Decryption method for the MindIR file. Only valid when dec_key is set. "
                    "AES-GCM | AES-CBC", "AES-GCM"),
    "encryptKey": ("The key used to encrypt the file, expressed in hexadecimal characters. "
                   "Only support AES-GCM and the key length is 16.", ""),
    "encryption": ("Whether to export the encryption model. true | false", "true"),
    "infer": ("Whether to do pre-inference after convert. true | false", "false"),
    "device": ("Set the target device, support Ascend, Ascend310 and Ascend310P will be "
               "deprecated.", ""),
    "saveType": ("The type of saved model. MINDIR | MINDIR_LITE", "MINDIR_LITE"),
    "optimize": ("The type of optimization. none | general | gpu_oriented | ascend_oriented",
                 "general"),
    "optimizeTransformer": ("Enable Fast-Transformer fusion true|false", "false"),
}
HELP_TEXT = "print usage message"


class FlagError(Exception):
    """A parse error, with the real parser's message."""


@dataclass
class Flags:
    values: dict[str, str] = field(default_factory=lambda: {k: d for k, (_, d) in FLAGS.items()})
    given: set[str] = field(default_factory=set)
    help: bool = False

    def __getattr__(self, name):
        try:
            return self.__dict__["values"][name]
        except KeyError:
            raise AttributeError(name) from None


def parse(argv: list[str]) -> Flags:
    """Parse ``argv`` (without the program name); raise FlagError with the real message."""
    pairs: list[tuple[str, str | None]] = []
    for raw in argv:
        item = raw.strip()
        if item == "--":
            break
        if not item.startswith("--"):
            raise FlagError(f"Failed: flag {item} is not valid.")
        key, eq, value = item[2:].partition("=")
        pairs.append((key, value if eq else None))
    flags = Flags()
    # The real parser keeps the pairs in a sorted multimap, so errors come in key order.
    for key, value in sorted(pairs, key=lambda kv: kv[0]):
        if key == "help":
            if key in flags.given:
                raise FlagError(f"Failed: already parsed flag: {key}")
            flags.given.add(key)
            flags.help = value is None or value == "true"
            continue
        if key not in FLAGS:
            raise FlagError(f"{key} is not a valid flag")
        if key in flags.given:
            raise FlagError(f"Failed: already parsed flag: {key}")
        if value is None:
            raise FlagError(f"No value provided for non-boolean type: {key}")
        flags.values[key] = value
        flags.given.add(key)
    return flags


def usage(prog: str = "converter_lite") -> str:
    lines = ["", f"usage: {prog} [options]", f" --help {HELP_TEXT}"]
    for name in sorted(FLAGS):
        lines.append(f" --{name}=VALUE {FLAGS[name][0]}")
    return "\n".join(lines) + "\n"
