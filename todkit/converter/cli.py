"""``converter_lite``: MindSpore Lite's converter command line, for MINDIR input.

Messages, their streams and exit statuses follow the real tool (reference/converter.md);
failures end with the line the ToD guide documents,
``CONVERT RESULT FAILED:<code> <description>``, and leave no output file behind.
"""

from __future__ import annotations

import sys

from todkit.converter import flags as flagmod
from todkit.core.errors import (
    RET_ERROR,
    RET_INPUT_PARAM_INVALID,
    RET_NOT_SUPPORT,
    RET_PARAM_INVALID,
    OpNotFoundError,
    TodkitError,
    describe,
)

FLAG_MISSING = ("Flag missing. When in single model scenario, fmk/modelFile/outputFile flags are "
                "necessary. When in multi model scenario, configFile flag is necessary.")
FMKS = ("TF", "TFLITE", "CAFFE", "MINDIR", "ONNX", "OM", "PYTORCH", "MSLITE")
IN_TYPES = ("FLOAT16", "FLOAT", "INT8", "UINT8", "INT32", "INT64", "DEFAULT")
OUT_TYPES = ("FLOAT16", "FLOAT", "INT8", "UINT8", "DEFAULT")
# The ToD guide lists on/off for --trainModel while the tool takes true/false: take all four.
TRAIN_VALUES = {"true": True, "on": True, "false": False, "off": False}


class _Fail(Exception):
    def __init__(self, code: int, *lines: str):
        super().__init__(lines[0] if lines else "")
        self.code = code
        self.lines = lines


def _init_flags(f: flagmod.Flags) -> bool:
    """Flags::Init's value checks; raises _Fail with the real messages."""
    checks = [
        (f.fp16 in ("on", "off"), "Init save_fp16 failed.", "Init save fp16 failed."),
        (f.fmk in FMKS, "INPUT ILLEGAL: fmk must be TF|TFLITE|CAFFE|MINDIR|ONNX",
         "Init fmk failed."),
        (f.saveType in ("MINDIR", "MINDIR_LITE"), "INPUT ILLEGAL: saveType must be "
         "MINDIR|MINDIR_LITE ", "Init save type failed."),
        (f.trainModel in TRAIN_VALUES, "INPUT ILLEGAL: trainModel must be true|false ",
         "Init train model failed."),
        (f.inputDataType in IN_TYPES, "INPUT INVALID: inputDataType is invalid: %s, supported "
         "inputDataType: FLOAT | INT8 | UINT8 | INT32 | INT64 | DEFAULT, got: "
         + f.inputDataType, "Init input output datatype failed."),
        (f.outputDataType in OUT_TYPES, "INPUT INVALID: outputDataType is invalid: %s, "
         "supported outputDataType: FLOAT | INT8 | UINT8 | DEFAULT, got: " + f.outputDataType,
         "Init input output datatype failed."),
        (f.inputDataFormat in ("", "NHWC", "NCHW"), "graph input format is invalid.",
         "Init graph input format failed."),
        (f.outputDataFormat in ("", "NHWC", "NCHW"),
         f"graph input format [{f.outputDataFormat}] is invalid!",
         "Init graph output format failed."),
        (f.optimizeTransformer in ("true", "false"), "INPUT ILLEGAL:  optimizeTransformer must "
         "be true|false ", "Init optimize transformers failed."),
        (f.infer in ("true", "false"), "INPUT ILLEGAL: infer must be true|false ",
         "Init pre inference failed."),
        (f.optimize in ("none", "general", "gpu_oriented") or f.optimize.startswith(
            "ascend_oriented"), "INPUT ILLEGAL: optimize must be "
         "none|general|gpu_oriented|ascend_oriented", "Init optimize failed"),
    ]
    for ok, *lines in checks:
        if not ok:
            raise _Fail(RET_INPUT_PARAM_INVALID, *lines)
    return TRAIN_VALUES[f.trainModel]


def _check_param(f: flagmod.Flags, train: bool) -> None:
    """The converter's own parameter checks, before it reads the model."""
    if not f.modelFile:
        raise _Fail(RET_INPUT_PARAM_INVALID, "INPUT MISSING: model file path is necessary")
    if not f.outputFile:
        raise _Fail(RET_INPUT_PARAM_INVALID, "INPUT MISSING: output file path is necessary")
    if f.outputFile.endswith("/"):
        raise _Fail(RET_INPUT_PARAM_INVALID, "INPUT ILLEGAL: outputFile must be a valid file path")
    if train:
        if f.fmk != "MINDIR":
            raise _Fail(RET_INPUT_PARAM_INVALID,
                        "INPUT ILLEGAL: train model converter supporting only MINDIR format")
        if f.inputDataType not in ("FLOAT", "DEFAULT"):
            raise _Fail(RET_INPUT_PARAM_INVALID,
                        "INPUT ILLEGAL: train model converter supporting only FP32 input tensors")
        if f.outputDataType not in ("FLOAT", "DEFAULT"):
            raise _Fail(RET_INPUT_PARAM_INVALID,
                        "INPUT ILLEGAL: train model converter supporting only FP32 output tensors")
    if f.fmk != "MINDIR":
        raise _Fail(RET_NOT_SUPPORT, f"todkit's converter reads MINDIR models only, not {f.fmk}")
    unsupported = [name for name in ("decryptKey", "configFile", "inputShape", "weightFile",
                                     "device") if f.values[name]]
    if f.saveType != "MINDIR_LITE":
        unsupported.append("saveType=" + f.saveType)
    if f.fp16 == "on":
        unsupported.append("fp16=on")
    if f.inputDataType not in ("FLOAT", "DEFAULT") or f.outputDataType not in ("FLOAT", "DEFAULT"):
        unsupported.append("input/output data type other than FLOAT")
    if unsupported:
        raise _Fail(RET_NOT_SUPPORT, "todkit's converter does not support these flags yet: "
                    + ", ".join(unsupported))


def _fail(code: int, *lines: str) -> int:
    for line in lines:
        print(line, file=sys.stderr)
    print(f"CONVERT RESULT FAILED:{code} {describe(code)}")
    return code


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        print(flagmod.usage())
        print(FLAG_MISSING)
        return RET_PARAM_INVALID
    try:
        f = flagmod.parse(argv)
    except flagmod.FlagError as e:
        print(str(e), file=sys.stderr)
        print(flagmod.usage(), file=sys.stderr)
        print(f"Flags PreInit failed. Ret: {RET_INPUT_PARAM_INVALID}")
        return RET_INPUT_PARAM_INVALID
    if f.help:
        print(flagmod.usage())
        return 0
    if len(argv) <= 1:
        if not f.configFile:
            print(FLAG_MISSING)
            return RET_PARAM_INVALID
        return _fail(RET_NOT_SUPPORT, "todkit's converter does not support the multi-model "
                     "configFile mode yet")
    try:
        train = _init_flags(f)
    except _Fail as e:
        for line in e.lines:
            print(line, file=sys.stderr)
        print(f"Flags Init failed. Ret: {e.code}")
        return e.code
    try:
        _check_param(f, train)
        from todkit.converter.convert import convert

        convert(f.modelFile, f.outputFile, train)
    except _Fail as e:
        return _fail(e.code, *e.lines)
    except OpNotFoundError as e:
        lines = ["UNSUPPORTED OP LIST:"]
        for op, nodes in e.missing.items():
            lines.append(f"FMKTYPE: MINDIR, OP TYPE: {op}, NODES: {', '.join(nodes)}")
        return _fail(e.code, str(e), *lines)
    except TodkitError as e:
        return _fail(e.code, str(e))
    except OSError as e:
        return _fail(RET_ERROR, f"{e.filename or f.modelFile}: {e.strerror or e}")
    print("CONVERT RESULT SUCCESS:0")
    return 0


if __name__ == "__main__":
    sys.exit(main())
