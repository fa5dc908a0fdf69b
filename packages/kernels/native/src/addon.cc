// N-API bindings: every entry point takes caller-owned typed arrays (zero-copy)
// and checks their lengths against the shapes it is given, so a mistake on the
// JS side raises an Error instead of corrupting memory.
#include <napi.h>

#include "blas.h"
#include "eltwise.h"
#include "grouped.h"
#include "moe.h"
#include "shape_ops.h"

namespace polymoe {
double fma_peak_gflops(i64 iters);
void adam_update(float* p, const float* g, float* m, float* v, i64 n, float lr, float beta1, float beta2, float eps,
                 float weight_decay, float bias1, float bias2, float grad_scale, bool decoupled);
double sum_squares(const float* x, i64 n);
void copy_f32(float* dst, const float* src, i64 n);
}  // namespace polymoe

namespace {

using polymoe::i64;

struct F32 {
  float* data;
  i64 length;
};

F32 f32_arg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  Napi::Value v = info[i];
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a Float32Array");
  auto arr = v.As<Napi::Float32Array>();
  return {arr.Data(), static_cast<i64>(arr.ElementLength())};
}

/** Float32Array or null/undefined (optional input). */
F32 f32_opt(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info[i].IsNull() || info[i].IsUndefined()) return {nullptr, 0};
  return f32_arg(info, i, name);
}

struct I32 {
  std::int32_t* data;
  i64 length;
};

I32 i32_arg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  Napi::Value v = info[i];
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
    throw Napi::TypeError::New(info.Env(), std::string(name) + " must be an Int32Array");
  auto arr = v.As<Napi::Int32Array>();
  return {arr.Data(), static_cast<i64>(arr.ElementLength())};
}

i64 int_arg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (!info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a number");
  double d = info[i].As<Napi::Number>().DoubleValue();
  if (d < 0 || d != static_cast<double>(static_cast<i64>(d)))
    throw Napi::RangeError::New(info.Env(), std::string(name) + " must be a non-negative integer, got " +
                                                std::to_string(d));
  return static_cast<i64>(d);
}

std::vector<i64> shape_arg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (!info[i].IsArray()) throw Napi::TypeError::New(info.Env(), std::string(name) + " must be an array");
  auto arr = info[i].As<Napi::Array>();
  std::vector<i64> out(arr.Length());
  for (uint32_t k = 0; k < arr.Length(); ++k) {
    Napi::Value e = arr[k];
    if (!e.IsNumber()) throw Napi::TypeError::New(info.Env(), std::string(name) + " must hold numbers");
    double d = e.As<Napi::Number>().DoubleValue();
    if (d < 0 || d != static_cast<double>(static_cast<i64>(d)))
      throw Napi::RangeError::New(info.Env(), std::string(name) + " holds a non-integer or negative value");
    out[k] = static_cast<i64>(d);
  }
  return out;
}

void need(const Napi::CallbackInfo& info, i64 have, i64 want, const char* name) {
  if (have < want)
    throw Napi::RangeError::New(info.Env(), std::string(name) + " has " + std::to_string(have) +
                                                " elements, needs " + std::to_string(want));
}

template <typename F>
Napi::Value guarded(const Napi::CallbackInfo& info, F&& f) {
  try {
    f();
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Napi::Error::New(info.Env(), e.what());
  }
  return info.Env().Undefined();
}

Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("blas", polymoe::blas_name(polymoe::current_blas()));
  o.Set("blasConfig", polymoe::blas_config());
  o.Set("onednn", polymoe::have_onednn());
  o.Set("threads", polymoe::num_threads());
#ifdef _OPENMP
  o.Set("openmp", true);
#else
  o.Set("openmp", false);
#endif
#if defined(__AVX512F__)
  o.Set("simd", "avx512");
#elif defined(__AVX2__)
  o.Set("simd", "avx2");
#else
  o.Set("simd", "baseline");
#endif
  return o;
}

Napi::Value SetNumThreads(const Napi::CallbackInfo& info) {
  i64 n = int_arg(info, 0, "threads");
  polymoe::set_num_threads(static_cast<int>(n < 1 ? 1 : n));
  return info.Env().Undefined();
}

Napi::Value GetNumThreads(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), polymoe::num_threads());
}

Napi::Value SetBlas(const Napi::CallbackInfo& info) {
  std::string name = info[0].As<Napi::String>().Utf8Value();
  return guarded(info, [&] {
    if (name == "openblas") polymoe::set_blas(polymoe::Blas::OpenBLAS);
    else if (name == "onednn") polymoe::set_blas(polymoe::Blas::OneDNN);
    else throw polymoe::KernelError("unknown BLAS '" + name + "'; valid: openblas, onednn");
  });
}

// sgemm(transA, transB, M, N, K, A, B, C): the bare BLAS call (benchmarks).
Napi::Value Sgemm(const Napi::CallbackInfo& info) {
  bool ta = info[0].ToBoolean(), tb = info[1].ToBoolean();
  i64 M = int_arg(info, 2, "M"), N = int_arg(info, 3, "N"), K = int_arg(info, 4, "K");
  F32 A = f32_arg(info, 5, "A"), B = f32_arg(info, 6, "B"), C = f32_arg(info, 7, "C");
  need(info, A.length, M * K, "A");
  need(info, B.length, K * N, "B");
  need(info, C.length, M * N, "C");
  return guarded(info, [&] { polymoe::sgemm(ta, tb, M, N, K, A.data, B.data, C.data); });
}

// batchMatMul(a, aBatch, b, bBatch, outBatch, M, N, K, transA, transB, out)
Napi::Value BatchMatMul(const Napi::CallbackInfo& info) {
  F32 a = f32_arg(info, 0, "a");
  auto ab = shape_arg(info, 1, "aBatch");
  F32 b = f32_arg(info, 2, "b");
  auto bb = shape_arg(info, 3, "bBatch");
  auto ob = shape_arg(info, 4, "outBatch");
  i64 M = int_arg(info, 5, "M"), N = int_arg(info, 6, "N"), K = int_arg(info, 7, "K");
  bool ta = info[8].ToBoolean(), tb = info[9].ToBoolean();
  F32 out = f32_arg(info, 10, "out");
  need(info, a.length, polymoe::product(ab) * M * K, "a");
  need(info, b.length, polymoe::product(bb) * K * N, "b");
  need(info, out.length, polymoe::product(ob) * M * N, "out");
  return guarded(info, [&] { polymoe::batch_matmul(a.data, ab, b.data, bb, ob, M, N, K, ta, tb, out.data); });
}

// binary(op, a, aShape, b, bShape, out, outShape)
Napi::Value Binary(const Napi::CallbackInfo& info) {
  i64 op = int_arg(info, 0, "op");
  F32 a = f32_arg(info, 1, "a");
  auto as = shape_arg(info, 2, "aShape");
  F32 b = f32_arg(info, 3, "b");
  auto bs = shape_arg(info, 4, "bShape");
  F32 out = f32_arg(info, 5, "out");
  auto os = shape_arg(info, 6, "outShape");
  need(info, a.length, polymoe::product(as), "a");
  need(info, b.length, polymoe::product(bs), "b");
  need(info, out.length, polymoe::product(os), "out");
  if (as.size() > os.size() || bs.size() > os.size())
    throw Napi::RangeError::New(info.Env(), "binary: input rank exceeds output rank");
  return guarded(info, [&] {
    polymoe::binary(static_cast<polymoe::BinOp>(op), a.data, as, b.data, bs, out.data, os);
  });
}

// unary(op, x, out, alpha)
Napi::Value Unary(const Napi::CallbackInfo& info) {
  i64 op = int_arg(info, 0, "op");
  F32 x = f32_arg(info, 1, "x"), out = f32_arg(info, 2, "out");
  float alpha = info[3].IsNumber() ? info[3].As<Napi::Number>().FloatValue() : 0.0f;
  need(info, out.length, x.length, "out");
  return guarded(info, [&] { polymoe::unary(static_cast<polymoe::UnOp>(op), x.data, out.data, x.length, alpha); });
}

// geluGrad(dy, x, dx)
Napi::Value GeluGrad(const Napi::CallbackInfo& info) {
  F32 dy = f32_arg(info, 0, "dy"), x = f32_arg(info, 1, "x"), dx = f32_arg(info, 2, "dx");
  need(info, dy.length, x.length, "dy");
  need(info, dx.length, x.length, "dx");
  return guarded(info, [&] { polymoe::gelu_grad(dy.data, x.data, dx.data, x.length); });
}

// dropout(x, y, rate, seed)
Napi::Value Dropout(const Napi::CallbackInfo& info) {
  F32 x = f32_arg(info, 0, "x"), y = f32_arg(info, 1, "y");
  need(info, y.length, x.length, "y");
  if (!info[2].IsNumber()) throw Napi::TypeError::New(info.Env(), "rate must be a number");
  const double rate = info[2].As<Napi::Number>().DoubleValue();
  if (!(rate >= 0 && rate < 1)) throw Napi::RangeError::New(info.Env(), "rate must be in [0, 1), got " + std::to_string(rate));
  const i64 seed = int_arg(info, 3, "seed");
  if (seed >= (i64{1} << 32)) throw Napi::RangeError::New(info.Env(), "seed must be below 2^32");
  return guarded(info, [&] { polymoe::dropout(x.data, y.data, x.length, static_cast<float>(rate), static_cast<std::uint64_t>(seed)); });
}

// reduce(op, x, shape, axes, out)
Napi::Value Reduce(const Napi::CallbackInfo& info) {
  i64 op = int_arg(info, 0, "op");
  F32 x = f32_arg(info, 1, "x");
  auto shape = shape_arg(info, 2, "shape");
  auto axes = shape_arg(info, 3, "axes");
  F32 out = f32_arg(info, 4, "out");
  need(info, x.length, polymoe::product(shape), "x");
  i64 n_out = 1;
  std::vector<bool> seen(shape.size(), false);
  for (i64 a : axes) {
    if (a >= static_cast<i64>(shape.size()) || seen[static_cast<size_t>(a)])
      throw Napi::RangeError::New(info.Env(), "reduce: axes must be distinct and below the rank");
    seen[static_cast<size_t>(a)] = true;
  }
  for (size_t d = 0; d < shape.size(); ++d)
    if (!seen[d]) n_out *= shape[d];
  need(info, out.length, n_out, "out");
  return guarded(info, [&] { polymoe::reduce(static_cast<polymoe::RedOp>(op), x.data, shape, axes, out.data); });
}

// transpose(x, shape, perm, out)
Napi::Value Transpose(const Napi::CallbackInfo& info) {
  F32 x = f32_arg(info, 0, "x");
  auto shape = shape_arg(info, 1, "shape");
  auto perm = shape_arg(info, 2, "perm");
  F32 out = f32_arg(info, 3, "out");
  const i64 n = polymoe::product(shape);
  need(info, x.length, n, "x");
  need(info, out.length, n, "out");
  std::vector<bool> seen(shape.size(), false);
  if (perm.size() != shape.size())
    throw Napi::RangeError::New(info.Env(), "transpose: perm length differs from the rank");
  for (i64 p : perm) {
    if (p >= static_cast<i64>(shape.size()) || seen[static_cast<size_t>(p)])
      throw Napi::RangeError::New(info.Env(), "transpose: perm is not a permutation");
    seen[static_cast<size_t>(p)] = true;
  }
  return guarded(info, [&] { polymoe::transpose(x.data, shape, perm, out.data); });
}

// softmax(x, out, rows, cols, log)
Napi::Value Softmax(const Napi::CallbackInfo& info) {
  F32 x = f32_arg(info, 0, "x"), out = f32_arg(info, 1, "out");
  i64 rows = int_arg(info, 2, "rows"), cols = int_arg(info, 3, "cols");
  bool log = info[4].ToBoolean();
  need(info, x.length, rows * cols, "x");
  need(info, out.length, rows * cols, "out");
  return guarded(info, [&] { polymoe::softmax(x.data, out.data, rows, cols, log); });
}

// logSoftmaxTopK(x, values, indices, rows, cols, k, exclude)
Napi::Value LogSoftmaxTopK(const Napi::CallbackInfo& info) {
  F32 x = f32_arg(info, 0, "x"), values = f32_arg(info, 1, "values");
  I32 indices = i32_arg(info, 2, "indices");
  const i64 rows = int_arg(info, 3, "rows"), cols = int_arg(info, 4, "cols"), k = int_arg(info, 5, "k");
  if (!info[6].IsNumber()) throw Napi::TypeError::New(info.Env(), "exclude must be a number");
  const i64 exclude = info[6].As<Napi::Number>().Int64Value();
  need(info, x.length, rows * cols, "x");
  need(info, values.length, rows * k, "values");
  if (indices.length != rows * k)
    throw Napi::RangeError::New(info.Env(), "indices has " + std::to_string(indices.length) + " elements, needs " + std::to_string(rows * k));
  return guarded(info, [&] { polymoe::log_softmax_topk(x.data, rows, cols, k, exclude, values.data, indices.data); });
}

// cachedAttention(q, k, v, mask|null, out, B, T, S, L, H, D, scale, causal)
Napi::Value CachedAttention(const Napi::CallbackInfo& info) {
  F32 q = f32_arg(info, 0, "q"), k = f32_arg(info, 1, "k"), v = f32_arg(info, 2, "v");
  F32 mask = f32_opt(info, 3, "mask"), out = f32_arg(info, 4, "out");
  const i64 B = int_arg(info, 5, "B"), T = int_arg(info, 6, "T"), S = int_arg(info, 7, "S");
  const i64 L = int_arg(info, 8, "L"), H = int_arg(info, 9, "H"), D = int_arg(info, 10, "D");
  if (!info[11].IsNumber()) throw Napi::TypeError::New(info.Env(), "scale must be a number");
  const float scale = info[11].As<Napi::Number>().FloatValue();
  const bool causal = info[12].ToBoolean();
  if (L > S) throw Napi::RangeError::New(info.Env(), "cachedAttention: length " + std::to_string(L) + " exceeds the cache's " + std::to_string(S) + " rows");
  need(info, q.length, B * T * H * D, "q");
  need(info, k.length, B * S * H * D, "k");
  need(info, v.length, B * S * H * D, "v");
  need(info, out.length, B * T * H * D, "out");
  if (mask.data) need(info, mask.length, B * L, "mask");
  return guarded(info, [&] {
    polymoe::cached_attention(q.data, k.data, v.data, mask.data, out.data, B, T, S, L, H, D, scale, causal);
  });
}

// layerNorm(x, gamma|null, beta|null, y, rows, cols, eps)
Napi::Value LayerNorm(const Napi::CallbackInfo& info) {
  F32 x = f32_arg(info, 0, "x"), g = f32_opt(info, 1, "gamma"), b = f32_opt(info, 2, "beta");
  F32 y = f32_arg(info, 3, "y");
  i64 rows = int_arg(info, 4, "rows"), cols = int_arg(info, 5, "cols");
  float eps = info[6].As<Napi::Number>().FloatValue();
  need(info, x.length, rows * cols, "x");
  need(info, y.length, rows * cols, "y");
  if (g.data) need(info, g.length, cols, "gamma");
  if (b.data) need(info, b.length, cols, "beta");
  return guarded(info, [&] { polymoe::layer_norm(x.data, g.data, b.data, y.data, rows, cols, eps); });
}

// layerNormGrad(dy, x, gamma|null, dx, dgamma|null, dbeta|null, rows, cols, eps)
Napi::Value LayerNormGrad(const Napi::CallbackInfo& info) {
  F32 dy = f32_arg(info, 0, "dy"), x = f32_arg(info, 1, "x"), g = f32_opt(info, 2, "gamma");
  F32 dx = f32_arg(info, 3, "dx"), dg = f32_opt(info, 4, "dgamma"), db = f32_opt(info, 5, "dbeta");
  i64 rows = int_arg(info, 6, "rows"), cols = int_arg(info, 7, "cols");
  float eps = info[8].As<Napi::Number>().FloatValue();
  need(info, dy.length, rows * cols, "dy");
  need(info, x.length, rows * cols, "x");
  need(info, dx.length, rows * cols, "dx");
  if (g.data) need(info, g.length, cols, "gamma");
  if (dg.data) need(info, dg.length, cols, "dgamma");
  if (db.data) need(info, db.length, cols, "dbeta");
  return guarded(info, [&] {
    polymoe::layer_norm_grad(dy.data, x.data, g.data, dx.data, dg.data, db.data, rows, cols, eps);
  });
}

// gather(params, outer, axisDim, inner, indices, out)
Napi::Value Gather(const Napi::CallbackInfo& info) {
  F32 p = f32_arg(info, 0, "params");
  i64 outer = int_arg(info, 1, "outer"), axis_dim = int_arg(info, 2, "axisDim"), inner = int_arg(info, 3, "inner");
  I32 idx = i32_arg(info, 4, "indices");
  F32 out = f32_arg(info, 5, "out");
  need(info, p.length, outer * axis_dim * inner, "params");
  need(info, out.length, outer * idx.length * inner, "out");
  return guarded(info, [&] { polymoe::gather(p.data, outer, axis_dim, inner, idx.data, idx.length, out.data); });
}

// unsortedSegmentSum(data, ids, n, inner, numSegments, out)
Napi::Value UnsortedSegmentSum(const Napi::CallbackInfo& info) {
  F32 data = f32_arg(info, 0, "data");
  I32 ids = i32_arg(info, 1, "segmentIds");
  i64 n = int_arg(info, 2, "n"), inner = int_arg(info, 3, "inner"), segs = int_arg(info, 4, "numSegments");
  F32 out = f32_arg(info, 5, "out");
  need(info, data.length, n * inner, "data");
  need(info, ids.length, n, "segmentIds");
  need(info, out.length, segs * inner, "out");
  return guarded(info, [&] { polymoe::unsorted_segment_sum(data.data, ids.data, n, inner, segs, out.data); });
}

// scatterNd(indices, updates, n, sliceSize, indexDims, out)
Napi::Value ScatterNd(const Napi::CallbackInfo& info) {
  I32 idx = i32_arg(info, 0, "indices");
  F32 upd = f32_arg(info, 1, "updates");
  i64 n = int_arg(info, 2, "n"), slice = int_arg(info, 3, "sliceSize");
  auto dims = shape_arg(info, 4, "indexDims");
  F32 out = f32_arg(info, 5, "out");
  need(info, idx.length, n * static_cast<i64>(dims.size()), "indices");
  need(info, upd.length, n * slice, "updates");
  need(info, out.length, polymoe::product(dims) * slice, "out");
  return guarded(info, [&] { polymoe::scatter_nd(idx.data, upd.data, n, slice, dims, out.data); });
}

// slice(x, shape, begin, size, out)
Napi::Value Slice(const Napi::CallbackInfo& info) {
  F32 x = f32_arg(info, 0, "x");
  auto shape = shape_arg(info, 1, "shape");
  auto begin = shape_arg(info, 2, "begin");
  auto size = shape_arg(info, 3, "size");
  F32 out = f32_arg(info, 4, "out");
  if (begin.size() != shape.size() || size.size() != shape.size())
    throw Napi::RangeError::New(info.Env(), "slice: begin and size must have the rank of x");
  for (size_t d = 0; d < shape.size(); ++d)
    if (begin[d] + size[d] > shape[d])
      throw Napi::RangeError::New(info.Env(), "slice: begin + size exceeds the shape in dim " + std::to_string(d));
  need(info, x.length, polymoe::product(shape), "x");
  need(info, out.length, polymoe::product(size), "out");
  return guarded(info, [&] { polymoe::slice(x.data, shape, begin, size, out.data); });
}

// pad(x, shape, before, after, value, out)
Napi::Value Pad(const Napi::CallbackInfo& info) {
  F32 x = f32_arg(info, 0, "x");
  auto shape = shape_arg(info, 1, "shape");
  auto before = shape_arg(info, 2, "before");
  auto after = shape_arg(info, 3, "after");
  float value = info[4].As<Napi::Number>().FloatValue();
  F32 out = f32_arg(info, 5, "out");
  if (before.size() != shape.size() || after.size() != shape.size())
    throw Napi::RangeError::New(info.Env(), "pad: paddings must have the rank of x");
  i64 n_out = 1;
  for (size_t d = 0; d < shape.size(); ++d) n_out *= before[d] + shape[d] + after[d];
  need(info, x.length, polymoe::product(shape), "x");
  need(info, out.length, n_out, "out");
  return guarded(info, [&] { polymoe::pad(x.data, shape, before, after, value, out.data); });
}

// fmaPeak(iters) -> GFLOP/s of register-only FMA chains on every thread
Napi::Value FmaPeak(const Napi::CallbackInfo& info) {
  i64 iters = int_arg(info, 0, "iters");
  return Napi::Number::New(info.Env(), polymoe::fma_peak_gflops(iters));
}

struct Pairs {
  I32 token, dest;
  F32 weight;  // data null when absent
};

Pairs pairs_arg(const Napi::CallbackInfo& info, size_t i) {
  Pairs p{i32_arg(info, i, "token"), i32_arg(info, i + 1, "dest"), f32_opt(info, i + 2, "weight")};
  if (p.dest.length != p.token.length)
    throw Napi::RangeError::New(info.Env(), "moe: token and dest have different lengths");
  if (p.weight.data && p.weight.length != p.token.length)
    throw Napi::RangeError::New(info.Env(), "moe: weight and token have different lengths");
  return p;
}

// moeDispatch(x, T, M, token, dest, weight|null, rows, buf)
Napi::Value MoeDispatch(const Napi::CallbackInfo& info) {
  F32 x = f32_arg(info, 0, "x");
  i64 T = int_arg(info, 1, "T"), M = int_arg(info, 2, "M");
  Pairs pr = pairs_arg(info, 3);
  i64 rows = int_arg(info, 6, "rows");
  F32 buf = f32_arg(info, 7, "buf");
  need(info, x.length, T * M, "x");
  need(info, buf.length, rows * M, "buf");
  return guarded(info, [&] {
    polymoe::moe_dispatch(x.data, T, M, pr.token.data, pr.dest.data, pr.weight.data, pr.token.length, rows, buf.data);
  });
}

// moeCombine(buf, rows, M, token, dest, weight|null, T, y)
Napi::Value MoeCombine(const Napi::CallbackInfo& info) {
  F32 buf = f32_arg(info, 0, "buf");
  i64 rows = int_arg(info, 1, "rows"), M = int_arg(info, 2, "M");
  Pairs pr = pairs_arg(info, 3);
  i64 T = int_arg(info, 6, "T");
  F32 y = f32_arg(info, 7, "y");
  need(info, buf.length, rows * M, "buf");
  need(info, y.length, T * M, "y");
  return guarded(info, [&] {
    polymoe::moe_combine(buf.data, rows, M, pr.token.data, pr.dest.data, pr.weight.data, pr.token.length, T, y.data);
  });
}

// moePairDot(a, T, b, rows, M, token, dest, dw)
Napi::Value MoePairDot(const Napi::CallbackInfo& info) {
  F32 a = f32_arg(info, 0, "a");
  i64 T = int_arg(info, 1, "T");
  F32 b = f32_arg(info, 2, "b");
  i64 rows = int_arg(info, 3, "rows"), M = int_arg(info, 4, "M");
  I32 token = i32_arg(info, 5, "token"), dest = i32_arg(info, 6, "dest");
  F32 dw = f32_arg(info, 7, "dw");
  need(info, a.length, T * M, "a");
  need(info, b.length, rows * M, "b");
  need(info, dest.length, token.length, "dest");
  need(info, dw.length, token.length, "dw");
  return guarded(info, [&] {
    polymoe::moe_pair_dot(a.data, T, b.data, rows, M, token.data, dest.data, token.length, dw.data);
  });
}

/** Segments as an Int32Array of (start, rows, expert) triples. */
std::vector<polymoe::Segment> segments_arg(const Napi::CallbackInfo& info, size_t i) {
  I32 raw = i32_arg(info, i, "segments");
  if (raw.length % 3 != 0)
    throw Napi::RangeError::New(info.Env(), "segments must hold (start, rows, expert) triples, got " +
                                                std::to_string(raw.length) + " values");
  std::vector<polymoe::Segment> out(static_cast<size_t>(raw.length / 3));
  for (size_t s = 0; s < out.size(); ++s)
    out[s] = {raw.data[3 * s], raw.data[3 * s + 1], raw.data[3 * s + 2]};
  return out;
}

// groupedMatMul(x, w, bias|null, segments, rows, E, K, N, transW, y)
Napi::Value GroupedMatMul(const Napi::CallbackInfo& info) {
  F32 x = f32_arg(info, 0, "x"), w = f32_arg(info, 1, "w");
  F32 b = f32_opt(info, 2, "bias");
  auto seg = segments_arg(info, 3);
  i64 rows = int_arg(info, 4, "rows"), E = int_arg(info, 5, "E"), K = int_arg(info, 6, "K"), N = int_arg(info, 7, "N");
  bool trans_w = info[8].ToBoolean();
  F32 y = f32_arg(info, 9, "y");
  need(info, x.length, rows * K, "x");
  need(info, w.length, E * K * N, "w");
  if (b.data) need(info, b.length, E * N, "bias");
  need(info, y.length, rows * N, "y");
  return guarded(info, [&] {
    polymoe::grouped_matmul(x.data, w.data, b.data, seg.data(), static_cast<i64>(seg.size()), rows, E, K, N, trans_w,
                            y.data);
  });
}

// groupedMatMulGradW(a, g, segments, rows, E, Ka, Ng, dw, db|null)
Napi::Value GroupedMatMulGradW(const Napi::CallbackInfo& info) {
  F32 a = f32_arg(info, 0, "a"), g = f32_arg(info, 1, "g");
  auto seg = segments_arg(info, 2);
  i64 rows = int_arg(info, 3, "rows"), E = int_arg(info, 4, "E"), Ka = int_arg(info, 5, "Ka"), Ng = int_arg(info, 6, "Ng");
  F32 dw = f32_arg(info, 7, "dw");
  F32 db = f32_opt(info, 8, "db");
  need(info, a.length, rows * Ka, "a");
  need(info, g.length, rows * Ng, "g");
  need(info, dw.length, E * Ka * Ng, "dw");
  if (db.data) need(info, db.length, E * Ng, "db");
  return guarded(info, [&] {
    polymoe::grouped_matmul_grad_w(a.data, g.data, seg.data(), static_cast<i64>(seg.size()), rows, E, Ka, Ng, dw.data,
                                   db.data);
  });
}

// adamUpdate(p, g, m, v, lr, beta1, beta2, eps, weightDecay, bias1, bias2, gradScale, decoupled)
Napi::Value AdamUpdate(const Napi::CallbackInfo& info) {
  F32 p = f32_arg(info, 0, "param"), g = f32_arg(info, 1, "grad"), m = f32_arg(info, 2, "m"), v = f32_arg(info, 3, "v");
  // Exact lengths: a longer array would leave part of it silently unchanged.
  auto same = [&](const F32& arr, const char* name) {
    if (arr.length != p.length)
      throw Napi::RangeError::New(info.Env(), std::string("adamUpdate: ") + name + " has " +
                                                  std::to_string(arr.length) + " elements but param has " +
                                                  std::to_string(p.length) + "; all four must be equal");
  };
  same(g, "grad");
  same(m, "m");
  same(v, "v");
  for (size_t i = 4; i < 12; ++i)
    if (!info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), "adamUpdate: argument " + std::to_string(i) + " must be a number");
  auto num = [&](size_t i) { return info[i].As<Napi::Number>().FloatValue(); };
  const float lr = num(4), b1 = num(5), b2 = num(6), eps = num(7), wd = num(8), bias1 = num(9), bias2 = num(10),
              scale = num(11);
  const bool decoupled = info[12].ToBoolean();
  return guarded(info, [&] {
    polymoe::adam_update(p.data, g.data, m.data, v.data, p.length, lr, b1, b2, eps, wd, bias1, bias2, scale, decoupled);
  });
}

// copyF32(dst, src): multi-threaded memcpy (the bandwidth reference of bench:adam).
Napi::Value CopyF32(const Napi::CallbackInfo& info) {
  F32 dst = f32_arg(info, 0, "dst"), src = f32_arg(info, 1, "src");
  if (dst.length != src.length)
    throw Napi::RangeError::New(info.Env(), "copyF32: dst has " + std::to_string(dst.length) +
                                                " elements but src has " + std::to_string(src.length));
  return guarded(info, [&] { polymoe::copy_f32(dst.data, src.data, dst.length); });
}

// sumSquares(x) -> number
Napi::Value SumSquares(const Napi::CallbackInfo& info) {
  F32 x = f32_arg(info, 0, "x");
  return Napi::Number::New(info.Env(), polymoe::sum_squares(x.data, x.length));
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("info", Napi::Function::New(env, Info));
  exports.Set("setNumThreads", Napi::Function::New(env, SetNumThreads));
  exports.Set("getNumThreads", Napi::Function::New(env, GetNumThreads));
  exports.Set("setBlas", Napi::Function::New(env, SetBlas));
  exports.Set("sgemm", Napi::Function::New(env, Sgemm));
  exports.Set("fmaPeak", Napi::Function::New(env, FmaPeak));
  exports.Set("batchMatMul", Napi::Function::New(env, BatchMatMul));
  exports.Set("binary", Napi::Function::New(env, Binary));
  exports.Set("unary", Napi::Function::New(env, Unary));
  exports.Set("geluGrad", Napi::Function::New(env, GeluGrad));
  exports.Set("dropout", Napi::Function::New(env, Dropout));
  exports.Set("reduce", Napi::Function::New(env, Reduce));
  exports.Set("transpose", Napi::Function::New(env, Transpose));
  exports.Set("softmax", Napi::Function::New(env, Softmax));
  exports.Set("logSoftmaxTopK", Napi::Function::New(env, LogSoftmaxTopK));
  exports.Set("cachedAttention", Napi::Function::New(env, CachedAttention));
  exports.Set("layerNorm", Napi::Function::New(env, LayerNorm));
  exports.Set("layerNormGrad", Napi::Function::New(env, LayerNormGrad));
  exports.Set("gather", Napi::Function::New(env, Gather));
  exports.Set("unsortedSegmentSum", Napi::Function::New(env, UnsortedSegmentSum));
  exports.Set("scatterNd", Napi::Function::New(env, ScatterNd));
  exports.Set("slice", Napi::Function::New(env, Slice));
  exports.Set("pad", Napi::Function::New(env, Pad));
  exports.Set("moeDispatch", Napi::Function::New(env, MoeDispatch));
  exports.Set("moeCombine", Napi::Function::New(env, MoeCombine));
  exports.Set("moePairDot", Napi::Function::New(env, MoePairDot));
  exports.Set("groupedMatMul", Napi::Function::New(env, GroupedMatMul));
  exports.Set("groupedMatMulGradW", Napi::Function::New(env, GroupedMatMulGradW));
  exports.Set("adamUpdate", Napi::Function::New(env, AdamUpdate));
  exports.Set("sumSquares", Napi::Function::New(env, SumSquares));
  exports.Set("copyF32", Napi::Function::New(env, CopyF32));
  return exports;
}

}  // namespace

NODE_API_MODULE(polymoe_kernels, Init)
