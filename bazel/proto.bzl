"""c_proto_library: compiles .proto files with protoc-c into a cc_library.

Every .proto lives in the //proto package and imports others relative to it,
so generated code includes e.g. "basalt/v1/kv.pb-c.h".
"""

def c_proto_library(name, srcs, deps = [], visibility = None):
    """One cc_library holding the protobuf-c code of `srcs`.

    Args:
      name: the cc_library's name.
      srcs: .proto files of the //proto package.
      deps: other c_proto_library targets these protos import.
      visibility: as for any rule.
    """
    bases = [s[:-len(".proto")] for s in srcs]
    hdrs = [b + ".pb-c.h" for b in bases]
    cfiles = [b + ".pb-c.c" for b in bases]
    native.genrule(
        name = name + "_gen",
        srcs = srcs + [d + "_protos" for d in deps],
        outs = hdrs + cfiles,
        cmd = "protoc-c --proto_path=proto --c_out=$(RULEDIR) " +
              " ".join(["$(location %s)" % s for s in srcs]),
    )
    # This library's protos and, transitively, those they import.
    native.filegroup(name = name + "_protos", srcs = srcs + [d + "_protos" for d in deps])
    native.cc_library(
        name = name,
        srcs = cfiles,
        hdrs = hdrs,
        includes = ["."],
        deps = deps + ["//bazel:protobuf_c"],
        visibility = visibility,
    )
