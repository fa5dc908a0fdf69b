// N-API binding of MPI for @polymoe/parallel.
//
// Model: MPI is initialised once (MPI_Init_thread, MPI_THREAD_MULTIPLE) on the
// JS main thread. Every collective is validated on the main thread (types,
// lengths, aliasing: a bad argument throws a TypeError/RangeError, never
// reaches MPI), then runs on its communicator's own thread (one per
// communicator, started at its first asynchronous collective): the blocking
// MPI call executes there while the event loop stays free, and the returned
// Promise settles on the JS thread when it completes. The typed arrays are
// held by references until then.
//
// Ordering: MPI requires the collectives of one communicator to be issued in
// the same order on every rank. A communicator's thread runs its collectives
// in the order they were started, and the JS layer (src/mpi.ts) also starts
// the next only after the previous settled. Collectives on different
// communicators run concurrently, on their own threads.
//
// Blocking variants (allReduceSync, allGatherSync, allToAllSync, allToAllVSync)
// run the same validated collective on the calling (JS) thread and return when
// it completed. They exist for collectives inside a synchronous computation —
// the MoE all-to-all and tensor-parallel reductions inside a forward/backward
// pass, which must not yield to the event loop. The JS layer refuses them while
// an asynchronous collective of the same communicator is pending.
//
// Memory: Open MPI moves large messages between ranks of one host with one
// kernel copy (CMA), which walks the pages of both processes; on 4 KiB pages
// that walk costs more than the copy (docs/benchmarks.md, bench:comm). Before a
// collective touches a buffer of at least 4 MiB, the binding advises the 2 MiB
// pages it spans for transparent huge pages (its aligned interior, and the
// partial pages at its ends where the rest of them is this process's anonymous
// memory too) and, when the same buffer comes back (reused), asks the kernel to
// collapse them now (MADV_COLLAPSE, Linux 6.1+; once, before the collective).
// Contents and addresses do not change; where the kernel refuses, nothing
// happens and the collective runs on the pages it had.
//
// Timing: every collective records the seconds spent inside MPI (check and
// collective, measured around the MPI calls), read by lastSeconds(); with the
// time seen by the caller it separates the binding's own cost from MPI's.
//
// Communicators are handles (small integers) into a table; 0 is MPI_COMM_WORLD.
// Every communicator uses MPI_ERRORS_RETURN, so an MPI failure becomes a
// rejected Promise carrying MPI's own error string instead of aborting.
#include <dlfcn.h>
#include <mpi.h>
#include <sys/mman.h>
#include <napi.h>

#include <atomic>
#include <climits>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace {

std::mutex g_mu;
std::vector<MPI_Comm> g_comms;  // handle -> communicator; MPI_COMM_NULL once freed
int g_provided = -1;
std::atomic<double> g_lastSeconds{0.0};  // time inside MPI of the last collective that completed

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif
constexpr size_t kHuge = size_t{2} << 20;
constexpr size_t kCollapseMin = size_t{4} << 20;
std::mutex g_hugeMu;
using Range = std::pair<std::uintptr_t, std::uintptr_t>;
struct Seen {
  Range buffer;      // [data, data+bytes)
  Range advised;     // the 2 MiB pages advised for it: its interior, and its partial end pages if eligible
  int failures = 0;  // collapses of the interior the kernel refused so far
};
std::vector<Seen> g_hugeSeen;  // buffers advised for huge pages, to collapse when met again
std::vector<Seen> g_hugeDone;  // buffers collapsed (or given up on)
constexpr int kCollapseTries = 3;

/** The 2 MiB pages wholly inside [r.first, r.second). */
Range Interior(const Range& r) { return {(r.first + kHuge - 1) / kHuge * kHuge, r.second / kHuge * kHuge}; }

void Remember(std::vector<Seen>& list, const Seen& r) {
  // The lists only save system calls, so they stay short (oldest out first).
  if (list.size() >= 64) list.erase(list.begin());
  list.push_back(r);
}

/**
 * Whether [lo, hi) is private anonymous read-write memory of this process
 * (one or more adjacent such mappings in /proc/self/maps: malloc's heap and
 * mmap chunks, where V8 puts large ArrayBuffers) — the memory a huge page may
 * back without changing anything but the page size. Read once per buffer.
 */
bool AnonymousReadWrite(std::uintptr_t lo, std::uintptr_t hi) {
  FILE* f = std::fopen("/proc/self/maps", "r");
  if (f == nullptr) return false;
  char line[512];
  std::uintptr_t covered = lo;
  while (covered < hi && std::fgets(line, sizeof line, f) != nullptr) {
    unsigned long start = 0, end = 0, offset = 0, inode = 0;
    char perms[8] = {0}, dev[16] = {0}, name[256] = {0};
    int got = std::sscanf(line, "%lx-%lx %7s %lx %15s %lu %255s", &start, &end, perms, &offset, dev, &inode, name);
    if (got < 6 || end <= covered) continue;
    if (start > covered) break;  // a hole
    const bool anon = inode == 0 && (got == 6 || std::strcmp(name, "[heap]") == 0);
    if (!anon || std::strncmp(perms, "rw-p", 4) != 0) break;
    covered = end;
  }
  std::fclose(f);
  return covered >= hi;
}

/**
 * Backs [data, data+bytes) with huge pages as far as the kernel can (see the
 * header): its 2 MiB-aligned interior, and each partial 2 MiB page at its ends
 * too when that whole page is anonymous read-write memory of this process (a
 * plain ArrayBuffer rarely starts on a 2 MiB boundary: without its ends, up to
 * 4 MiB of a 16 MiB buffer stays on 4 KiB pages). The first time a buffer is
 * met its range is only advised (MADV_HUGEPAGE: pages not yet touched, e.g. a
 * fresh receive buffer, then fault in huge); the second time — a buffer
 * reused, which is when a copy pays off — it is collapsed (MADV_COLLAPSE
 * copies its 4 KiB pages into huge ones, ~6-12 ms for 16 MiB, ~10 us when
 * already huge) and not touched again; a refused collapse is tried again at
 * the next uses, up to kCollapseTries times. A buffer used once is never
 * copied. Best effort: errors (no THP, no memory to compact, pages pinned by
 * another rank's copy) leave the pages as they were.
 */
void PreferHugePages(void* data, size_t bytes) {
  if (bytes < kCollapseMin) return;
  auto a = reinterpret_cast<std::uintptr_t>(data);
  Seen e{{a, a + bytes}, {0, 0}, 0};
  bool collapse = false;
  {
    std::lock_guard<std::mutex> lock(g_hugeMu);
    for (const auto& d : g_hugeDone)
      if (d.buffer == e.buffer) return;
    for (auto it = g_hugeSeen.begin(); it != g_hugeSeen.end(); ++it) {
      if (it->buffer == e.buffer) {
        e = *it;
        g_hugeSeen.erase(it);
        collapse = true;
        break;
      }
    }
  }
  const Range interior = Interior(e.buffer);
  if (!collapse) {
    Range& r = e.advised;
    r = interior;
    const Range outer{a / kHuge * kHuge, (a + bytes + kHuge - 1) / kHuge * kHuge};
    if (outer.first < r.first && AnonymousReadWrite(outer.first, r.first)) r.first = outer.first;
    if (outer.second > r.second && AnonymousReadWrite(r.second, outer.second)) r.second = outer.second;
  }
  bool done = true;  // nothing more to do, unless advised now and to be collapsed when met again
#ifdef MADV_HUGEPAGE
  auto advise = [](std::uintptr_t lo, std::uintptr_t hi, int how) {
    return hi <= lo || madvise(reinterpret_cast<void*>(lo), hi - lo, how) == 0;
  };
  if (e.advised.second > e.advised.first && advise(e.advised.first, e.advised.second, MADV_HUGEPAGE)) {
    if (!collapse) {
      done = false;
    } else {
      // One call per part: the kernel stops a collapse at the first 2 MiB page it
      // cannot host (an end page shared with a neighbouring mapping it will not
      // merge with), which would leave the interior on 4 KiB pages too. The
      // interior may be refused for want of free huge pages (fragmented memory)
      // or pages pinned at that moment: it is tried again the next times (a few).
      advise(e.advised.first, interior.first, MADV_COLLAPSE);  // partial end pages: once, best effort
      advise(interior.second, e.advised.second, MADV_COLLAPSE);
      done = advise(interior.first, interior.second, MADV_COLLAPSE) || ++e.failures >= kCollapseTries;
    }
  }
#endif
  std::lock_guard<std::mutex> lock(g_hugeMu);
  Remember(done ? g_hugeDone : g_hugeSeen, e);
}

bool Initialized() {
  int f = 0;
  MPI_Initialized(&f);
  return f != 0;
}

bool Finalized() {
  int f = 0;
  MPI_Finalized(&f);
  return f != 0;
}

std::string MpiErrorString(int rc) {
  char s[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(rc, s, &len) != MPI_SUCCESS) return "MPI error " + std::to_string(rc);
  return std::string(s, static_cast<size_t>(len));
}

void RequireLive(const Napi::Env& env) {
  if (!Initialized()) throw Napi::Error::New(env, "MPI is not initialized: call init() first");
  if (Finalized()) throw Napi::Error::New(env, "MPI was already finalized in this process");
}

std::int64_t IntArg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (!info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a number");
  double d = info[i].As<Napi::Number>().DoubleValue();
  if (d != static_cast<double>(static_cast<std::int64_t>(d)) || d < INT_MIN || d > INT_MAX)
    throw Napi::RangeError::New(info.Env(), std::string(name) + " must be a 32-bit integer");
  return static_cast<std::int64_t>(d);
}

MPI_Comm CommArg(const Napi::CallbackInfo& info, size_t i) {
  RequireLive(info.Env());
  std::int64_t h = IntArg(info, i, "communicator handle");
  std::lock_guard<std::mutex> lock(g_mu);
  if (h < 0 || h >= static_cast<std::int64_t>(g_comms.size()) || g_comms[h] == MPI_COMM_NULL)
    throw Napi::RangeError::New(info.Env(),
                                "communicator handle " + std::to_string(h) + " is unknown or was freed");
  return g_comms[h];
}

struct Buf {
  void* data = nullptr;
  std::int64_t length = 0;  // elements
  size_t bytes = 0;
  MPI_Datatype type = MPI_DATATYPE_NULL;
  napi_typedarray_type kind = napi_float32_array;
  Napi::Object obj;
};

const char* KindName(napi_typedarray_type t) {
  switch (t) {
    case napi_int8_array: return "Int8Array";
    case napi_uint8_array: return "Uint8Array";
    case napi_uint8_clamped_array: return "Uint8ClampedArray";
    case napi_int16_array: return "Int16Array";
    case napi_uint16_array: return "Uint16Array";
    case napi_int32_array: return "Int32Array";
    case napi_uint32_array: return "Uint32Array";
    case napi_float32_array: return "Float32Array";
    case napi_float64_array: return "Float64Array";
    case napi_bigint64_array: return "BigInt64Array";
    case napi_biguint64_array: return "BigUint64Array";
  }
  return "TypedArray";
}

/** A Float32Array, Float64Array or Int32Array argument (the element types collectives accept). */
Buf BufArg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  Napi::Value v = info[i];
  if (!v.IsTypedArray())
    throw Napi::TypeError::New(info.Env(),
                               std::string(name) + " must be a Float32Array, Float64Array or Int32Array");
  auto ta = v.As<Napi::TypedArray>();
  Buf b;
  b.kind = ta.TypedArrayType();
  switch (b.kind) {
    case napi_float32_array: b.type = MPI_FLOAT; break;
    case napi_float64_array: b.type = MPI_DOUBLE; break;
    case napi_int32_array: b.type = MPI_INT; break;
    default:
      throw Napi::TypeError::New(info.Env(), std::string(name) +
                                                 " must be a Float32Array, Float64Array or Int32Array, got " +
                                                 KindName(b.kind));
  }
  // napi_get_typedarray_info gives the data pointer (offset included) for
  // ArrayBuffer- and SharedArrayBuffer-backed arrays alike.
  napi_typedarray_type type;
  size_t length = 0, offset = 0;
  void* data = nullptr;
  napi_value ab;
  if (napi_get_typedarray_info(info.Env(), ta, &type, &length, &data, &ab, &offset) != napi_ok)
    throw Napi::TypeError::New(info.Env(), std::string(name) + ": cannot read the typed array");
  b.length = static_cast<std::int64_t>(length);
  b.bytes = ta.ByteLength();
  b.data = data;
  b.obj = ta.As<Napi::Object>();
  if (b.length > INT_MAX)
    throw Napi::RangeError::New(info.Env(), std::string(name) + " has " + std::to_string(b.length) +
                                                " elements; MPI counts are 32-bit (at most " +
                                                std::to_string(INT_MAX) + ")");
  return b;
}

Buf Int32Arg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  Buf b = BufArg(info, i, name);
  if (b.kind != napi_int32_array)
    throw Napi::TypeError::New(info.Env(), std::string(name) + " must be an Int32Array, got " + KindName(b.kind));
  return b;
}

void SameType(const Napi::Env& env, const Buf& a, const Buf& b, const char* what) {
  if (a.kind != b.kind)
    throw Napi::TypeError::New(env, std::string(what) + ": send is a " + KindName(a.kind) + " but recv is a " +
                                        KindName(b.kind) + "; both must have the same element type");
}

bool Overlap(const Buf& a, const Buf& b) {
  auto a0 = reinterpret_cast<std::uintptr_t>(a.data), b0 = reinterpret_cast<std::uintptr_t>(b.data);
  return a.bytes > 0 && b.bytes > 0 && a0 < b0 + b.bytes && b0 < a0 + a.bytes;
}

void Disjoint(const Napi::Env& env, const Buf& a, const Buf& b, const char* what) {
  if (Overlap(a, b))
    throw Napi::RangeError::New(env, std::string(what) + ": send and recv share memory; pass separate arrays");
}

MPI_Op OpArg(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsString()) throw Napi::TypeError::New(info.Env(), "op must be 'sum', 'max' or 'min'");
  std::string op = info[i].As<Napi::String>().Utf8Value();
  if (op == "sum") return MPI_SUM;
  if (op == "max") return MPI_MAX;
  if (op == "min") return MPI_MIN;
  throw Napi::RangeError::New(info.Env(), "op must be 'sum', 'max' or 'min', got '" + op + "'");
}

int CommSize(MPI_Comm c) {
  int s = 0;
  MPI_Comm_size(c, &s);
  return s;
}

// --- fused argument check -------------------------------------------------------
//
// The JS layer's cross-rank check (src/communicator.ts) exchanges an 8-int
// signature per rank before each collective. Passing `sig` and `all` to a
// collective runs that allGather and the comparison on the thread that runs the
// collective, right before it: one trip to the communicator's thread (or none,
// for a blocking collective) instead of two.
// If any rank flagged a local error or the ranks disagree, every rank skips the
// collective and the Promise resolves to 1 (JS then reads `all` and throws the
// same error on every rank); otherwise it resolves to 0.

constexpr int kSig = 8;

struct Check {
  bool on = false;
  int* sig = nullptr;
  int* all = nullptr;
  Buf sigBuf, allBuf;
};

Check CheckArg(const Napi::CallbackInfo& info, size_t i, MPI_Comm c) {
  Check k;
  if (info.Length() <= i || info[i].IsUndefined() || info[i].IsNull()) return k;
  k.sigBuf = Int32Arg(info, i, "sig");
  k.allBuf = Int32Arg(info, i + 1, "all");
  int p = CommSize(c);
  if (k.sigBuf.length != kSig || k.allBuf.length != static_cast<std::int64_t>(kSig) * p)
    throw Napi::RangeError::New(info.Env(), "sig must hold " + std::to_string(kSig) + " and all " +
                                                std::to_string(kSig * p) + " int32 values");
  k.sig = static_cast<int*>(k.sigBuf.data);
  k.all = static_cast<int*>(k.allBuf.data);
  k.on = true;
  return k;
}

/** Signature allGather and comparison, then `op` if every rank agrees. */
int Checked(const Check& k, MPI_Comm c, int* out, const std::function<int()>& op) {
  *out = 0;
  if (k.on) {
    int rc = MPI_Allgather(k.sig, kSig, MPI_INT, k.all, kSig, MPI_INT, c);
    if (rc != MPI_SUCCESS) return rc;
    int p = CommSize(c);
    for (int r = 0; r < p; ++r) {
      bool bad = k.all[r * kSig + 4] != 0;
      for (int s = 0; s < 4 && !bad; ++s) bad = k.all[r * kSig + s] != k.all[s];
      if (bad) {
        *out = 1;
        return MPI_SUCCESS;
      }
    }
  }
  return op();
}

// --- asynchronous collectives: one MPI thread per communicator ------------------

/** Runs a collective's MPI calls, recording their seconds for lastSeconds(). */
int Timed(const std::function<int(int*)>& fn, int* out) {
  double t0 = MPI_Wtime();
  int rc = fn(out);
  g_lastSeconds.store(MPI_Wtime() - t0);
  return rc;
}

std::string Failure(const std::string& what, int rc) { return what + " failed in MPI: " + MpiErrorString(rc); }

/**
 * One asynchronous collective: the MPI call (run on its communicator's thread)
 * and what settles its Promise on the JS thread (the deferred, the references
 * that keep its typed arrays alive until then).
 */
struct Job {
  std::string what;
  std::function<int(int*)> fn;
  std::vector<std::pair<void*, size_t>> huge;  // its buffers, for PreferHugePages
  napi_deferred deferred = nullptr;
  std::vector<napi_ref> keep;
  int result = 0;
  int rc = MPI_SUCCESS;
};

// Completions travel to the JS thread through one thread-safe function. It is
// referenced (keeps the event loop alive) only while jobs are pending, so a
// process with no collective in flight can exit; touched on the JS thread only.
napi_threadsafe_function g_done = nullptr;
std::size_t g_pending = 0;

void Settle(napi_env env, napi_value /*js_cb*/, void* /*context*/, void* data) {
  auto* j = static_cast<Job*>(data);
  if (env == nullptr) return;  // the environment is going away: nothing left to settle
  for (napi_ref r : j->keep) napi_delete_reference(env, r);
  napi_value v = nullptr;
  if (j->rc == MPI_SUCCESS) {
    napi_create_int32(env, j->result, &v);
    napi_resolve_deferred(env, j->deferred, v);
  } else {
    std::string msg = Failure(j->what, j->rc);
    napi_value m = nullptr;
    napi_create_string_utf8(env, msg.c_str(), msg.size(), &m);
    napi_create_error(env, nullptr, m, &v);
    napi_reject_deferred(env, j->deferred, v);
  }
  delete j;
  if (--g_pending == 0) napi_unref_threadsafe_function(env, g_done);
}

/**
 * The thread that runs a communicator's asynchronous collectives, in the order
 * they were started. One per communicator, for its lifetime, rather than
 * whichever libuv pool thread is free: MPI's temporary buffers (a large
 * allReduce allocates one the size of its message) come from the calling
 * thread's malloc arena, so a collective that rotates over the pool's four
 * threads meets four cold buffers — measured 12% slower on a 16 MiB allReduce
 * at 2 ranks than on one thread (docs/benchmarks.md, bench:comm). Also no pool
 * slots to run out of: file I/O cannot queue behind collectives, nor
 * collectives of different communicators behind each other.
 */
class CommThread {
 public:
  CommThread() : thread_([this] { Loop(); }) {}
  void Submit(Job* j) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back(j);
    }
    cv_.notify_one();
  }
  /**
   * Stops the thread once idle and waits for it. False if a collective is
   * inside MPI: the thread is left running, and this object must then never
   * be destroyed (the thread still uses it).
   */
  bool Stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
      if (busy_ || !queue_.empty()) {
        thread_.detach();
        return false;
      }
    }
    cv_.notify_one();
    thread_.join();
    return true;
  }

 private:
  void Loop() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;
      Job* j = queue_.front();
      queue_.pop_front();
      busy_ = true;
      lock.unlock();
      for (const auto& [data, bytes] : j->huge) PreferHugePages(data, bytes);
      j->rc = Timed(j->fn, &j->result);
      lock.lock();
      busy_ = false;  // before the JS thread can learn of the completion (and stop this thread)
      lock.unlock();
      napi_call_threadsafe_function(g_done, j, napi_tsfn_nonblocking);  // unbounded queue: never refused while live
      lock.lock();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job*> queue_;
  bool stop_ = false;
  bool busy_ = false;
  std::thread thread_;  // last: starts once the members above exist
};

// By communicator handle; JS thread only. Never destroyed: at process exit a
// thread still waiting for work must not meet a destructor (std::terminate).
auto& g_threads = *new std::map<std::int64_t, std::unique_ptr<CommThread>>();

/** Queues `fn` on the communicator's thread; returns the Promise it settles. */
Napi::Promise Submit(const Napi::Env& env, std::int64_t handle, std::string what, std::function<int(int*)> fn,
                     std::initializer_list<const Buf*> keep, const Check* k) {
  if (g_done == nullptr) {
    napi_value name = nullptr;
    napi_create_string_utf8(env, "polymoe_mpi_collective", NAPI_AUTO_LENGTH, &name);
    napi_status st = napi_create_threadsafe_function(env, nullptr, nullptr, name, 0, 1, nullptr, nullptr, nullptr,
                                                     Settle, &g_done);
    if (st != napi_ok) throw Napi::Error::New(env, "cannot create the MPI completion channel");
    napi_unref_threadsafe_function(env, g_done);
  }
  auto j = std::make_unique<Job>();
  j->what = std::move(what);
  j->fn = std::move(fn);
  std::vector<const Buf*> bufs(keep);
  if (k != nullptr && k->on) {
    bufs.push_back(&k->sigBuf);
    bufs.push_back(&k->allBuf);
  }
  for (const Buf* b : bufs) {
    napi_ref r = nullptr;
    napi_create_reference(env, b->obj, 1, &r);
    j->keep.push_back(r);
    j->huge.emplace_back(b->data, b->bytes);
  }
  napi_value promise = nullptr;
  napi_create_promise(env, &j->deferred, &promise);
  auto& t = g_threads[handle];
  if (!t) t = std::make_unique<CommThread>();
  if (g_pending++ == 0) napi_ref_threadsafe_function(env, g_done);
  t->Submit(j.release());
  return Napi::Promise(env, promise);
}

/** Stops a communicator's thread; false if it was inside MPI (left running, its object kept). */
bool StopThread(std::unique_ptr<CommThread>& t) {
  if (t->Stop()) return true;
  (void)t.release();  // still in use by its running thread
  return false;
}

/** Stops every communicator thread; false if one was inside MPI. */
bool StopThreads() {
  bool idle = true;
  for (auto& [h, t] : g_threads) idle = StopThread(t) && idle;
  g_threads.clear();
  return idle;
}

/**
 * Runs a collective: on this thread now (Sync: returns its result, throws on
 * an MPI error) or on its communicator's thread (returns a Promise).
 */
template <bool Sync>
Napi::Value Launch(const Napi::CallbackInfo& info, const char* what, std::function<int(int*)> fn,
                   std::initializer_list<const Buf*> keep, const Check* k = nullptr) {
  const Napi::Env env = info.Env();
  if constexpr (Sync) {
    int out = 0;
    for (const Buf* b : keep) PreferHugePages(b->data, b->bytes);
    int rc = Timed(fn, &out);
    if (rc != MPI_SUCCESS) throw Napi::Error::New(env, Failure(what, rc));
    return Napi::Number::New(env, out);
  } else {
    return Submit(env, IntArg(info, 0, "communicator handle"), what, std::move(fn), keep, k);
  }
}

// --- lifecycle ---------------------------------------------------------------

Napi::Value Init(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (Finalized()) throw Napi::Error::New(env, "MPI was finalized in this process and cannot start again");
  if (!Initialized()) {
    // Node loads addons with RTLD_LOCAL; Open MPI's plugins (mca_*.so) resolve
    // symbols of libmpi at run time, so make libmpi's symbols global first.
    Dl_info dl;
    if (dladdr(reinterpret_cast<void*>(&MPI_Init_thread), &dl) != 0 && dl.dli_fname != nullptr)
      dlopen(dl.dli_fname, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD);
    int provided = -1;
    int rc = MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided);
    if (rc != MPI_SUCCESS) throw Napi::Error::New(env, "MPI_Init_thread failed: " + MpiErrorString(rc));
    g_provided = provided;
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    std::lock_guard<std::mutex> lock(g_mu);
    g_comms.assign(1, MPI_COMM_WORLD);
  } else if (g_comms.empty()) {
    // Someone else (another addon) initialised MPI in this process.
    MPI_Query_thread(&g_provided);
    std::lock_guard<std::mutex> lock(g_mu);
    g_comms.assign(1, MPI_COMM_WORLD);
  }
  int rank = 0, size = 0, len = 0, vmaj = 0, vmin = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  MPI_Get_version(&vmaj, &vmin);
  char lib[MPI_MAX_LIBRARY_VERSION_STRING];
  MPI_Get_library_version(lib, &len);
  std::string library(lib, static_cast<size_t>(len));
  while (!library.empty() && (library.back() == '\n' || library.back() == '\0')) library.pop_back();
  char host[MPI_MAX_PROCESSOR_NAME];
  int hlen = 0;
  MPI_Get_processor_name(host, &hlen);
  Napi::Object o = Napi::Object::New(env);
  o.Set("rank", rank);
  o.Set("size", size);
  o.Set("threadMultiple", g_provided == MPI_THREAD_MULTIPLE);
  o.Set("threadLevel", g_provided);
  o.Set("mpiVersion", std::to_string(vmaj) + "." + std::to_string(vmin));
  o.Set("library", library.substr(0, library.find('\n')));
  o.Set("host", std::string(host, static_cast<size_t>(hlen)));
  return o;
}

Napi::Value State(const Napi::CallbackInfo& info) {
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("initialized", Initialized());
  o.Set("finalized", Finalized());
  return o;
}

Napi::Value Finalize(const Napi::CallbackInfo& info) {
  if (Initialized() && !Finalized()) {
    // A collective still inside MPI (the process exits with it pending): MPI_Finalize
    // would wait for it, and it for peers that may never join, so do not finalize —
    // mpirun then ends the job, as for a rank that fails.
    if (!StopThreads()) return info.Env().Undefined();
    {
      std::lock_guard<std::mutex> lock(g_mu);
      for (size_t h = 1; h < g_comms.size(); ++h)
        if (g_comms[h] != MPI_COMM_NULL) MPI_Comm_free(&g_comms[h]);
      g_comms.clear();
    }
    int rc = MPI_Finalize();
    if (rc != MPI_SUCCESS) throw Napi::Error::New(info.Env(), "MPI_Finalize failed: " + MpiErrorString(rc));
  }
  return info.Env().Undefined();
}

Napi::Value Abort(const Napi::CallbackInfo& info) {
  int code = static_cast<int>(IntArg(info, 0, "code"));
  if (Initialized() && !Finalized()) MPI_Abort(MPI_COMM_WORLD, code);
  return info.Env().Undefined();
}

/**
 * allocBuffer(bytes) -> ArrayBuffer: zeroed memory, 2 MiB-aligned and advised
 * for transparent huge pages. Communication buffers on huge pages make the
 * kernel's single-copy transfers between ranks (CMA) several times faster
 * than on 4 KiB pages. Freed when the ArrayBuffer is collected.
 */
Napi::Value AllocBuffer(const Napi::CallbackInfo& info) {
  if (!info[0].IsNumber()) throw Napi::TypeError::New(info.Env(), "bytes must be a number");
  double d = info[0].As<Napi::Number>().DoubleValue();
  if (d < 0 || d > 1e12 || d != static_cast<double>(static_cast<std::int64_t>(d)))
    throw Napi::RangeError::New(info.Env(), "bytes must be a non-negative integer");
  size_t bytes = static_cast<size_t>(d);
  if (bytes == 0) return Napi::ArrayBuffer::New(info.Env(), 0);
  const size_t align = size_t{2} << 20;
  size_t rounded = (bytes + align - 1) / align * align;
  void* p = nullptr;
  if (posix_memalign(&p, align, rounded) != 0 || p == nullptr)
    throw Napi::Error::New(info.Env(), "allocBuffer: out of memory for " + std::to_string(bytes) + " bytes");
#ifdef MADV_HUGEPAGE
  madvise(p, rounded, MADV_HUGEPAGE);
#endif
  std::memset(p, 0, rounded);
  return Napi::ArrayBuffer::New(info.Env(), p, bytes, [](Napi::Env, void* data) { std::free(data); });
}

Napi::Value Wtime(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), MPI_Wtime()); }

/** Seconds the last completed collective of this process spent inside MPI (argument check included). */
Napi::Value LastSeconds(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), g_lastSeconds.load());
}

// --- communicators ---------------------------------------------------------------

Napi::Value Rank(const Napi::CallbackInfo& info) {
  MPI_Comm c = CommArg(info, 0);
  int r = 0;
  MPI_Comm_rank(c, &r);
  return Napi::Number::New(info.Env(), r);
}

Napi::Value Size(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), CommSize(CommArg(info, 0)));
}

/** split(handle, color, key) -> Promise<handle | -1>; color < 0 means "not a member" (MPI_UNDEFINED). */
Napi::Value Split(const Napi::CallbackInfo& info) {
  MPI_Comm c = CommArg(info, 0);
  int color = static_cast<int>(IntArg(info, 1, "color"));
  int key = static_cast<int>(IntArg(info, 2, "key"));
  return Submit(info.Env(), IntArg(info, 0, "communicator handle"), "split", [c, color, key](int* out) {
    MPI_Comm nc = MPI_COMM_NULL;
    int rc = MPI_Comm_split(c, color < 0 ? MPI_UNDEFINED : color, key, &nc);
    if (rc != MPI_SUCCESS) return rc;
    if (nc == MPI_COMM_NULL) {
      *out = -1;
      return MPI_SUCCESS;
    }
    MPI_Comm_set_errhandler(nc, MPI_ERRORS_RETURN);
    std::lock_guard<std::mutex> lock(g_mu);
    g_comms.push_back(nc);
    *out = static_cast<int>(g_comms.size() - 1);
    return MPI_SUCCESS;
  }, {}, nullptr);
}

Napi::Value Free(const Napi::CallbackInfo& info) {
  RequireLive(info.Env());
  std::int64_t h = IntArg(info, 0, "communicator handle");
  if (h == 0) throw Napi::RangeError::New(info.Env(), "the world communicator cannot be freed");
  // Its thread first (the JS layer frees a communicator with nothing pending, so it is idle).
  if (auto t = g_threads.find(h); t != g_threads.end()) {
    StopThread(t->second);
    g_threads.erase(t);
  }
  std::lock_guard<std::mutex> lock(g_mu);
  if (h > 0 && h < static_cast<std::int64_t>(g_comms.size()) && g_comms[h] != MPI_COMM_NULL)
    MPI_Comm_free(&g_comms[h]);
  return info.Env().Undefined();
}

// --- collectives -------------------------------------------------------------------

/** allReduce(handle, send, recv, op): recv may be send itself (in place). */
template <bool Sync>
Napi::Value AllReduce(const Napi::CallbackInfo& info) {
  MPI_Comm c = CommArg(info, 0);
  Buf s = BufArg(info, 1, "send"), r = BufArg(info, 2, "recv");
  MPI_Op op = OpArg(info, 3);
  SameType(info.Env(), s, r, "allReduce");
  if (r.length != s.length)
    throw Napi::RangeError::New(info.Env(), "allReduce: recv has " + std::to_string(r.length) +
                                                " elements, send has " + std::to_string(s.length) +
                                                "; they must be equal");
  bool inPlace = s.data == r.data;
  if (!inPlace) Disjoint(info.Env(), s, r, "allReduce");
  void* sp = inPlace ? MPI_IN_PLACE : s.data;
  void* rp = r.data;
  int n = static_cast<int>(s.length);
  MPI_Datatype t = s.type;
  Check k = CheckArg(info, 4, c);
  return Launch<Sync>(
      info, "allReduce",
      [=](int* out) { return Checked(k, c, out, [=] { return MPI_Allreduce(sp, rp, n, t, op, c); }); },
      {&s, &r}, &k);
}

/** reduceScatter(handle, send, recv, op): send holds size equal blocks of recv.length. */
Napi::Value ReduceScatter(const Napi::CallbackInfo& info) {
  MPI_Comm c = CommArg(info, 0);
  Buf s = BufArg(info, 1, "send"), r = BufArg(info, 2, "recv");
  MPI_Op op = OpArg(info, 3);
  SameType(info.Env(), s, r, "reduceScatter");
  Disjoint(info.Env(), s, r, "reduceScatter");
  int p = CommSize(c);
  if (s.length != r.length * p)
    throw Napi::RangeError::New(info.Env(), "reduceScatter: send has " + std::to_string(s.length) +
                                                " elements, needs recv.length * size = " +
                                                std::to_string(r.length) + " * " + std::to_string(p));
  void *sp = s.data, *rp = r.data;
  int n = static_cast<int>(r.length);
  MPI_Datatype t = s.type;
  Check k = CheckArg(info, 4, c);
  return Launch<false>(
      info, "reduceScatter",
      [=](int* out) { return Checked(k, c, out, [=] { return MPI_Reduce_scatter_block(sp, rp, n, t, op, c); }); },
      {&s, &r}, &k);
}

/** allGather(handle, send, recv): recv holds size blocks of send.length, in rank order. */
template <bool Sync>
Napi::Value AllGather(const Napi::CallbackInfo& info) {
  MPI_Comm c = CommArg(info, 0);
  Buf s = BufArg(info, 1, "send"), r = BufArg(info, 2, "recv");
  SameType(info.Env(), s, r, "allGather");
  Disjoint(info.Env(), s, r, "allGather");
  int p = CommSize(c);
  if (r.length != s.length * p)
    throw Napi::RangeError::New(info.Env(), "allGather: recv has " + std::to_string(r.length) +
                                                " elements, needs send.length * size = " +
                                                std::to_string(s.length) + " * " + std::to_string(p));
  void *sp = s.data, *rp = r.data;
  int n = static_cast<int>(s.length);
  MPI_Datatype t = s.type;
  Check k = CheckArg(info, 3, c);
  return Launch<Sync>(
      info, "allGather",
      [=](int* out) { return Checked(k, c, out, [=] { return MPI_Allgather(sp, n, t, rp, n, t, c); }); },
      {&s, &r}, &k);
}

/** allToAll(handle, send, recv): both hold size equal blocks; block j of send goes to rank j. */
template <bool Sync>
Napi::Value AllToAll(const Napi::CallbackInfo& info) {
  MPI_Comm c = CommArg(info, 0);
  Buf s = BufArg(info, 1, "send"), r = BufArg(info, 2, "recv");
  SameType(info.Env(), s, r, "allToAll");
  Disjoint(info.Env(), s, r, "allToAll");
  int p = CommSize(c);
  if (s.length != r.length || s.length % p != 0)
    throw Napi::RangeError::New(info.Env(), "allToAll: send has " + std::to_string(s.length) +
                                                " and recv " + std::to_string(r.length) +
                                                " elements; both must be equal and divisible by size " +
                                                std::to_string(p));
  void *sp = s.data, *rp = r.data;
  int n = static_cast<int>(s.length / p);
  MPI_Datatype t = s.type;
  Check k = CheckArg(info, 3, c);
  return Launch<Sync>(
      info, "allToAll",
      [=](int* out) { return Checked(k, c, out, [=] { return MPI_Alltoall(sp, n, t, rp, n, t, c); }); },
      {&s, &r}, &k);
}

void CheckLayout(const Napi::Env& env, const Buf& counts, const Buf& displs, const Buf& data, int p,
                 const char* side) {
  if (counts.length != p || displs.length != p)
    throw Napi::RangeError::New(env, std::string("allToAllV: ") + side + "Counts and " + side +
                                         "Displs must have size = " + std::to_string(p) + " entries, got " +
                                         std::to_string(counts.length) + " and " +
                                         std::to_string(displs.length));
  auto* cn = static_cast<const std::int32_t*>(counts.data);
  auto* dp = static_cast<const std::int32_t*>(displs.data);
  for (int j = 0; j < p; ++j) {
    if (cn[j] < 0 || dp[j] < 0)
      throw Napi::RangeError::New(env, std::string("allToAllV: ") + side + " count/displacement for rank " +
                                           std::to_string(j) + " is negative");
    if (static_cast<std::int64_t>(dp[j]) + cn[j] > data.length)
      throw Napi::RangeError::New(env, std::string("allToAllV: ") + side + " block for rank " +
                                           std::to_string(j) + " ends at " +
                                           std::to_string(static_cast<std::int64_t>(dp[j]) + cn[j]) +
                                           " but the " + side + " buffer has " +
                                           std::to_string(data.length) + " elements");
  }
}

/** allToAllV(handle, send, sendCounts, sendDispls, recv, recvCounts, recvDispls) (elements). */
template <bool Sync>
Napi::Value AllToAllV(const Napi::CallbackInfo& info) {
  MPI_Comm c = CommArg(info, 0);
  Buf s = BufArg(info, 1, "send");
  Buf sc = Int32Arg(info, 2, "sendCounts"), sd = Int32Arg(info, 3, "sendDispls");
  Buf r = BufArg(info, 4, "recv");
  Buf rc = Int32Arg(info, 5, "recvCounts"), rd = Int32Arg(info, 6, "recvDispls");
  SameType(info.Env(), s, r, "allToAllV");
  Disjoint(info.Env(), s, r, "allToAllV");
  int p = CommSize(c);
  CheckLayout(info.Env(), sc, sd, s, p, "send");
  CheckLayout(info.Env(), rc, rd, r, p, "recv");
  void *sp = s.data, *rp = r.data;
  auto *scp = static_cast<const int*>(sc.data), *sdp = static_cast<const int*>(sd.data);
  auto *rcp = static_cast<const int*>(rc.data), *rdp = static_cast<const int*>(rd.data);
  MPI_Datatype t = s.type;
  return Launch<Sync>(
      info, "allToAllV", [=](int*) { return MPI_Alltoallv(sp, scp, sdp, t, rp, rcp, rdp, t, c); },
      {&s, &sc, &sd, &r, &rc, &rd});
}

/** broadcast(handle, buf, root): in place. */
Napi::Value Broadcast(const Napi::CallbackInfo& info) {
  MPI_Comm c = CommArg(info, 0);
  Buf b = BufArg(info, 1, "buf");
  int root = static_cast<int>(IntArg(info, 2, "root"));
  int p = CommSize(c);
  if (root < 0 || root >= p)
    throw Napi::RangeError::New(info.Env(), "broadcast: root " + std::to_string(root) +
                                                " is not a rank of this communicator (size " +
                                                std::to_string(p) + ")");
  void* bp = b.data;
  int n = static_cast<int>(b.length);
  MPI_Datatype t = b.type;
  Check k = CheckArg(info, 3, c);
  return Launch<false>(
      info, "broadcast",
      [=](int* out) { return Checked(k, c, out, [=] { return MPI_Bcast(bp, n, t, root, c); }); }, {&b}, &k);
}

Napi::Value Barrier(const Napi::CallbackInfo& info) {
  MPI_Comm c = CommArg(info, 0);
  Check k = CheckArg(info, 1, c);
  return Launch<false>(
      info, "barrier", [=](int* out) { return Checked(k, c, out, [=] { return MPI_Barrier(c); }); }, {},
      &k);
}

Napi::Object Module(Napi::Env env, Napi::Object exports) {
  exports.Set("init", Napi::Function::New(env, Init));
  exports.Set("state", Napi::Function::New(env, State));
  exports.Set("finalize", Napi::Function::New(env, Finalize));
  exports.Set("abort", Napi::Function::New(env, Abort));
  exports.Set("wtime", Napi::Function::New(env, Wtime));
  exports.Set("allocBuffer", Napi::Function::New(env, AllocBuffer));
  exports.Set("rank", Napi::Function::New(env, Rank));
  exports.Set("size", Napi::Function::New(env, Size));
  exports.Set("split", Napi::Function::New(env, Split));
  exports.Set("free", Napi::Function::New(env, Free));
  exports.Set("allReduce", Napi::Function::New(env, AllReduce<false>));
  exports.Set("reduceScatter", Napi::Function::New(env, ReduceScatter));
  exports.Set("allGather", Napi::Function::New(env, AllGather<false>));
  exports.Set("allToAll", Napi::Function::New(env, AllToAll<false>));
  exports.Set("allToAllV", Napi::Function::New(env, AllToAllV<false>));
  exports.Set("allReduceSync", Napi::Function::New(env, AllReduce<true>));
  exports.Set("allGatherSync", Napi::Function::New(env, AllGather<true>));
  exports.Set("allToAllSync", Napi::Function::New(env, AllToAll<true>));
  exports.Set("allToAllVSync", Napi::Function::New(env, AllToAllV<true>));
  exports.Set("broadcast", Napi::Function::New(env, Broadcast));
  exports.Set("barrier", Napi::Function::New(env, Barrier));
  exports.Set("lastSeconds", Napi::Function::New(env, LastSeconds));
  return exports;
}

}  // namespace

NODE_API_MODULE(polymoe_mpi, Module)
