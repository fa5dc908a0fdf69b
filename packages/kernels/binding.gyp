{
  "targets": [
    {
      "target_name": "polymoe_kernels",
      "sources": [
        "native/src/addon.cc",
        "native/src/gemm.cc",
        "native/src/eltwise.cc",
        "native/src/reduce.cc",
        "native/src/transpose.cc",
        "native/src/norm.cc",
        "native/src/attention.cc",
        "native/src/gather.cc",
        "native/src/slice.cc",
        "native/src/peak.cc",
        "native/src/moe.cc",
        "native/src/grouped.cc",
        "native/src/optim.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "<!@(node scripts/native-config.mjs defines)"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-O3", "-fopenmp", "-fno-math-errno", "-fno-trapping-math", "-fexceptions", "<!@(node scripts/native-config.mjs cflags)"],
      "ldflags": ["-fopenmp"],
      "libraries": ["<!@(node scripts/native-config.mjs libraries)"]
    }
  ]
}
